/**
 * The daemon's configuration schema (JSON Schema, validated once at start-up by ajv with
 * defaults filled in). Every key is shown and explained in config.example.yaml; a test keeps
 * the two in step. `additionalProperties: false` everywhere: a typo is an error, not a no-op.
 */
const seconds = (def: number, min = 0, max = 86_400) => ({ type: 'number', minimum: min, maximum: max, default: def });

export const upstreamSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,31}$', default: 'tresor' },
    profile: { enum: ['tresor', 'aci', 'pinaivu', 'near'], default: 'tresor' },
    url: { type: 'string', minLength: 1, default: 'https://api.tresor.co' },
    listen: { type: 'string', minLength: 1, default: '127.0.0.1:8787' },
    ca_file: { type: ['string', 'null'], default: null },
    api_key_env: { type: ['string', 'null'], pattern: '^[A-Za-z_][A-Za-z0-9_]*$', default: 'TRESOR_API_KEY' },
    api_key_file: { type: ['string', 'null'], default: null },
    local_token_file: { type: ['string', 'null'], default: null },
    allow_unauthenticated_listen: { type: 'boolean', default: false },
    allowed_hosts: {
      type: 'array',
      maxItems: 256,
      items: { type: 'string', maxLength: 253, pattern: '^(?:[A-Za-z0-9_-]+(?:\\.[A-Za-z0-9_-]+)*\\.?|\\[?[0-9A-Fa-f:.]+\\]?)$' },
      default: [],
    },
    allowed_origins: { type: 'array', maxItems: 256, items: { type: 'string', maxLength: 300, pattern: '^https?://[^/?#\\s]+$' }, default: [] },
    max_body_bytes: { type: 'integer', minimum: 1, maximum: 4 * 1024 ** 3, default: 50 * 1024 * 1024 },
    timeouts: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        connect_seconds: seconds(10, 0.1, 300),
        request_seconds: seconds(180, 1, 3600),
        max_request_seconds: seconds(600, 1, 3600),
        stream_idle_seconds: seconds(300, 1, 3600),
        body_idle_seconds: seconds(30, 0.1, 3600),
      },
    },
    pool: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        connections: { type: 'integer', minimum: 1, maximum: 4096, default: 128 },
        keep_alive_seconds: seconds(60, 1, 3600),
        http2: { enum: [false, true, 'streams'], default: 'streams' },
      },
    },
    attestation: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        mode: { enum: ['enforce', 'warn', 'off'], default: 'enforce' },
        release_root_file: { type: ['string', 'null'], default: null },
        trust_bundle: { type: 'string', minLength: 1, default: 'https://trust.tresor.co/api/router.json' },
        require_nonce: { type: 'boolean', default: false },
        allow_debug: { type: 'boolean', default: false },
        test_roots_file: { type: ['string', 'null'], default: null },
        allow_unbound_channel: { type: 'boolean', default: false },
        max_age_seconds: seconds(600, 10, 86_400),
        refresh_ahead_seconds: seconds(60, 0, 3600),
      },
    },
    aci: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        allowed_measurements: { type: 'array', items: { type: 'string', pattern: '^[0-9a-f]{96}$' }, default: [] },
        amd_ark_file: { type: ['string', 'null'], default: null },
        require_upstream_verified: { type: 'boolean', default: false },
      },
    },
    near: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        allowed_measurements: { type: 'array', items: { type: 'string', pattern: '^[0-9a-f]{96}$' }, default: [] },
      },
    },
    tdx: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        intel_root_file: { type: ['string', 'null'], default: null },
        allowed_rtmrs: {
          type: 'array',
          default: [],
          items: {
            type: 'object',
            additionalProperties: false,
            minProperties: 1,
            properties: { rtmr0: { type: 'string', pattern: '^[0-9a-f]{96}$' }, rtmr1: { type: 'string', pattern: '^[0-9a-f]{96}$' }, rtmr2: { type: 'string', pattern: '^[0-9a-f]{96}$' } },
          },
        },
        allowed_compose_hashes: { type: 'array', items: { type: 'string', pattern: '^[0-9a-f]{64}$' }, default: [] },
        collateral_file: { type: ['string', 'null'], default: null },
        collateral_dir: { type: ['string', 'null'], default: null },
        pccs_url: { type: ['string', 'null'], maxLength: 2048, default: null },
        pccs_ca_file: { type: ['string', 'null'], default: null },
        pccs_refresh_seconds: { type: 'integer', minimum: 60, maximum: 30 * 86_400, default: 86_400 },
        allowed_tcb_statuses: {
          type: 'array',
          minItems: 1,
          uniqueItems: true,
          items: { enum: ['UpToDate', 'SWHardeningNeeded', 'ConfigurationNeeded', 'ConfigurationAndSWHardeningNeeded', 'OutOfDate', 'OutOfDateConfigurationNeeded'] },
          default: ['UpToDate'],
        },
        min_tcb_evaluation_data_number: { type: 'integer', minimum: 0, maximum: 0xffffffff, default: 0 },
        blocked_advisories: { type: 'array', items: { type: 'string', pattern: '^INTEL-SA-[0-9]{5}$' }, default: [] },
        allow_sept_ve: { type: 'boolean', default: false },
      },
    },
    snp: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        allow_migrate_ma: { type: 'boolean', default: false },
        allow_smt: { type: 'boolean', default: true },
        require_tsme: { type: 'boolean', default: false },
        allow_provisional_firmware: { type: 'boolean', default: false },
        crl_file: { type: ['string', 'null'], default: null },
        min_launch_tcb: { type: ['string', 'null'], pattern: '^([0-9a-fA-F]{16}|(bl|tee|snp|ucode|fmc)=[0-9]{1,3}(,(bl|tee|snp|ucode|fmc)=[0-9]{1,3}){3,4})$', default: null },
        min_tcb: { type: ['string', 'null'], pattern: '^([0-9a-fA-F]{16}|(bl|tee|snp|ucode|fmc)=[0-9]{1,3}(,(bl|tee|snp|ucode|fmc)=[0-9]{1,3}){3,4})$', default: null },
      },
    },
    pinaivu: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        allowed_pcr0: { type: 'array', items: { type: 'string', pattern: '^[0-9a-f]{96}$' }, default: [] },
        nitro_root_file: { type: ['string', 'null'], default: null },
        max_document_age_seconds: seconds(600, 10, 86_400),
      },
    },
    receipts: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        mode: { enum: ['audit', 'strict', 'off'], default: 'audit' },
        jwks_path: { type: 'string', pattern: '^/[^?#]*$', default: '/.well-known/jwks.json' },
        jwks_max_age_seconds: seconds(600, 1, 86_400),
        jwks_cooldown_seconds: seconds(30, 1, 3600),
        not_found_grace_seconds: seconds(10, 0, 600),
        fetch_delay_seconds: seconds(0.1, 0, 60),
        deadline_seconds: seconds(120, 1, 3600),
        fetches_per_second: { type: 'number', exclusiveMinimum: 0, maximum: 100_000, default: 50 },
        concurrency: { type: 'integer', minimum: 1, maximum: 1024, default: 16 },
        max_pending: { type: 'integer', minimum: 1, maximum: 10_000_000, default: 100_000 },
        inference_policy: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            snp: {
              type: 'object',
              additionalProperties: false,
              default: {},
              properties: { allowed_measurements: { type: 'array', items: { type: 'string', pattern: '^[0-9a-f]{96}$' }, default: [] } },
            },
            nitro: {
              type: 'object',
              additionalProperties: false,
              default: {},
              properties: {
                allowed_pcrs: {
                  type: 'array',
                  items: { type: 'object', minProperties: 1, propertyNames: { pattern: '^(?:[0-9]|1[0-5])$' }, additionalProperties: { type: 'string', pattern: '^[0-9a-f]{96}$' } },
                  default: [],
                },
              },
            },
          },
        },
      },
    },
  },
} as const;

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        level: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], default: 'info' },
        format: { enum: ['json', 'pretty'], default: 'json' },
        file: { type: ['string', 'null'], default: null },
        max_file_bytes: { type: 'integer', minimum: 4096, maximum: 16 * 1024 ** 3, default: 10 * 1024 * 1024 },
        retention_files: { type: 'integer', minimum: 1, maximum: 10_000, default: 5 },
      },
    },
    state_dir: { type: 'string', minLength: 1, default: '~/.tresor-attest' },
    audit: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        dir: { type: ['string', 'null'], default: null },
        max_file_bytes: { type: 'integer', minimum: 4096, maximum: 16 * 1024 ** 3, default: 16 * 1024 * 1024 },
        retention_files: { type: 'integer', minimum: 1, maximum: 100_000, default: 30 },
        archive_receipts: { type: 'boolean', default: true },
        archive_evidence: { type: 'boolean', default: true },
        disk_full_action: { enum: ['fail', 'serve'], default: 'fail' },
        signing_key_file: { type: ['string', 'null'], default: null },
        checkpoint_interval_seconds: seconds(300, 1, 86_400),
      },
    },
    otlp: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        endpoint: { type: ['string', 'null'], default: null },
        logs_endpoint: { type: ['string', 'null'], default: null },
        headers: { type: 'object', additionalProperties: { type: 'string' }, default: {} },
        protocol: { enum: ['http/protobuf', 'http/json'], default: 'http/protobuf' },
        timeout_seconds: seconds(10, 0.1, 600),
        service_name: { type: 'string', minLength: 1, default: 'tresor-attest' },
        resource_attributes: { type: 'object', additionalProperties: { type: 'string' }, default: {} },
        instance_id: { type: ['string', 'null'], minLength: 1, maxLength: 256, default: null },
        batch_records: { type: 'integer', minimum: 1, maximum: 10_000, default: 512 },
        // Largest export request body (bytes, as encoded): a batch over it is sent as smaller ones (collectors and proxies refuse large bodies).
        max_request_bytes: { type: 'integer', minimum: 16_384, maximum: 268_435_456, default: 4_194_304 },
        interval_ms: { type: 'integer', minimum: 10, maximum: 600_000, default: 1000 },
        retry_max_ms: { type: 'integer', minimum: 100, maximum: 3_600_000, default: 30_000 },
      },
    },
    shutdown_grace_seconds: seconds(30, 0, 3600),
    memory: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // V8's old generation grows to at most (1 + this/100) × what survived the last full GC (100: twice); 0 = V8's own factor (up to 4×).
        heap_growing_percent: { type: 'integer', minimum: 0, maximum: 300, default: 75 },
        // false (default): V8 frees dead ArrayBuffers' memory as part of each scavenge, on the main thread; true: V8's own concurrent sweeping (src/util/heap.ts).
        concurrent_array_buffer_sweeping: { type: 'boolean', default: false },
      },
    },
    upstreams: { type: 'array', minItems: 1, maxItems: 64, items: upstreamSchema, default: [{}] },
  },
} as const;
