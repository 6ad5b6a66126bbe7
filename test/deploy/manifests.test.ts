import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parse, parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { loadConfig, resolveConfig } from '../../src/config/load.js';
import type { UpstreamConfig } from '../../src/config/types.js';
import { hostAllowed, listenerDoor } from '../../src/proxy/admission.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { ROOT } from '../helpers/spawn.js';
import { envOf, execForm, readDockerfile } from './dockerfile.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- free-form manifests

const read = (p: string) => readFileSync(`${ROOT}${p}`, 'utf8');
/** Kubernetes reads manifests as YAML 1.1 (0440 is octal there). */
const k8s = (p: string): Obj[] => parseAllDocuments(read(p), { version: '1.1' }).map((d) => d.toJS() as Obj);

describe('Dockerfile', () => {
  const ins = readDockerfile();
  const last = Math.max(...ins.map((i) => i.stage));
  const runtime = ins.filter((i) => i.stage === last);

  test('multi-stage on a current Node LTS slim image; the runtime stage is non-root with state on a volume', () => {
    const froms = ins.filter((i) => i.op === 'FROM');
    expect(froms.length).toBeGreaterThanOrEqual(2);
    const arg = ins.find((i) => i.op === 'ARG' && i.args.startsWith('NODE_VERSION='))?.args.split('=')[1];
    expect(Number(arg)).toBeGreaterThanOrEqual(22);
    expect(Number(arg) % 2).toBe(0); // even majors are the LTS lines
    for (const f of froms) expect(f.args).toMatch(/^node:\$\{NODE_VERSION\}-slim\b/);
    expect(runtime.some((i) => i.op === 'COPY' && i.args.startsWith('--from=build'))).toBe(true);
    const user = runtime.filter((i) => i.op === 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(runtime.find((i) => i.op === 'VOLUME')?.args).toContain('/var/lib/tresor-attest');
    expect(envOf(ins, last).TRESOR_ATTEST_STATE_DIR).toBe('/var/lib/tresor-attest');
    expect(runtime.find((i) => i.op === 'STOPSIGNAL')?.args).toBe('SIGTERM');
    expect(execForm(runtime.find((i) => i.op === 'ENTRYPOINT')?.args ?? '')).toEqual(['node', 'bin/tresor-attest.js']);
    expect(execForm(runtime.find((i) => i.op === 'CMD')?.args ?? '')).toEqual(['serve']);
    // The build installs no scripts (no downloads) and the runtime has no dev dependencies.
    expect(ins.find((i) => i.op === 'RUN' && i.args.includes('npm ci'))?.args).toContain('--ignore-scripts');
    expect(ins.some((i) => i.op === 'RUN' && i.args.includes('npm prune --omit=dev'))).toBe(true);
  });

  test('.dockerignore keeps the build context to what the build needs', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const p of ['.git', 'node_modules', 'dist', 'test', 'test-artifacts', '.tresor-attest']) expect(ignored).toContain(p);
    for (const copied of ['src', 'bin', 'certs', 'package.json', 'package-lock.json', 'config.example.yaml', 'tsconfig.json', 'tsconfig.build.json']) expect(ignored).not.toContain(copied);
  });

  describe('the HEALTHCHECK one-liner', () => {
    let h: Harness;
    beforeAll(async () => {
      h = await startHarness();
    });
    afterAll(() => h.close());

    test('exits 0 against a live daemon and 1 when nothing answers', async () => {
      const hc = ins.find((i) => i.op === 'HEALTHCHECK');
      expect(hc?.args).toMatch(/--interval=\d+s --timeout=\d+s/);
      const cmd = execForm(hc?.args.slice(hc.args.indexOf('CMD') + 3) ?? '');
      expect(cmd[0]).toBe('node');
      expect(cmd.join(' ')).toContain("'http://127.0.0.1:8787/healthz'");
      // Asynchronously: the daemon answering it runs in this process.
      const run = (url: string) =>
        new Promise<number | null>((resolve) => {
          const child = spawn(process.execPath, cmd.slice(1), { env: { ...process.env, TRESOR_ATTEST_HEALTH_URL: url }, stdio: 'ignore', timeout: 10_000 });
          child.on('exit', (code) => resolve(code));
        });
      expect(await run(`${h.origin}/healthz`)).toBe(0);
      expect(await run(`${h.origin}/no-such-page`)).toBe(1);
      expect(await run('http://127.0.0.1:9/healthz')).toBe(1);
    });
  });
});

describe('examples/docker-compose.yaml', () => {
  const doc = parse(read('examples/docker-compose.yaml'), { merge: true }) as Obj; // compose honours `<<` merge keys
  const svc = doc.services as Record<string, Obj>;

  test('an app using OPENAI_BASE_URL=http://tresor-attest:<port>/v1, the daemon beside it, the simulator as the router', () => {
    expect(Object.keys(svc).sort()).toEqual(['app', 'router-sim', 'tresor-attest']);
    const d = svc['tresor-attest'] as Obj;
    const listen = d.environment.TRESOR_ATTEST_LISTEN as string;
    const port = Number(listen.split(':').at(-1));
    expect(svc.app?.environment.OPENAI_BASE_URL).toBe(`http://tresor-attest:${port}/v1`);
    expect(svc.app?.depends_on['tresor-attest'].condition).toBe('service_healthy');
    expect(d.ports).toContain(`127.0.0.1:${port}:${port}`);
    // Reached from other containers: a token is required, and the app presents it as its API key.
    expect(listen.startsWith('0.0.0.0:')).toBe(true);
    const tokenFile = d.environment.TRESOR_ATTEST_LOCAL_TOKEN_FILE as string;
    expect(tokenFile).toBe('/run/secrets/tresor_local_token');
    expect(d.secrets).toContain('tresor_local_token');
    expect(doc.secrets.tresor_local_token.environment).toBe('TRESOR_LOCAL_TOKEN');
    expect(svc.app?.environment.OPENAI_API_KEY).toMatch(/^\$\{TRESOR_LOCAL_TOKEN[:?}]/);
    // The key is a mounted secret, never an environment value of the daemon or the app.
    expect(d.environment.TRESOR_ATTEST_API_KEY_FILE).toBe('/run/secrets/tresor_api_key');
    expect(d.secrets).toContain('tresor_api_key');
    expect(JSON.stringify(svc.app?.environment)).not.toContain('TRESOR_API_KEY');
    // The simulator's outputs are what the daemon trusts, through a shared volume.
    const sim = svc['router-sim'] as Obj;
    expect(sim.command.slice(0, 5)).toEqual(['sim', '--host', 'router-sim', '--port', '8443']);
    const simDir = sim.command[sim.command.indexOf('--write-dir') + 1] as string;
    const shared = (sim.volumes as string[]).find((v) => v.endsWith(`:${simDir}`))?.split(':')[0] as string;
    const mount = (d.volumes as string[]).find((v) => v.startsWith(`${shared}:`))?.split(':')[1] as string;
    expect(d.environment.TRESOR_ATTEST_CA_FILE).toBe(`${mount}/sim-ca.pem`);
    expect(d.environment.TRESOR_ATTEST_RELEASE_ROOT_FILE).toBe(`${mount}/release-root.pub`);
    expect(d.environment.TRESOR_ATTEST_UPSTREAM_URL).toBe('https://router-sim:8443');
    expect(d.environment.TRESOR_ATTEST_TRUST_BUNDLE).toBe('https://router-sim:8443/trust/router.json');
    // The simulator's roots are test roots: allowed explicitly, from the file `sim --write-dir` writes.
    expect(d.environment.TRESOR_ATTEST_TEST_ROOTS_FILE).toBe(`${mount}/test-roots.pem`);
    // Every simulator-only variable is marked, so that a real deployment can drop them all.
    const text = readFileSync(new URL('../../examples/docker-compose.yaml', import.meta.url), 'utf8');
    expect(text.match(/# _SIM$/gm)).toHaveLength(5);
    expect(text).toContain('remove the five *_SIM-marked variables');
    expect(doc.volumes).toHaveProperty(shared);
  });

  test('every service hardened: read-only root, init, no new privileges, no capabilities; state on a volume; drains on stop', () => {
    for (const [name, s] of Object.entries(svc)) {
      expect(s.read_only, name).toBe(true);
      expect(s.init, name).toBe(true);
      expect(s.cap_drop, name).toEqual(['ALL']);
      expect(s.security_opt, name).toContain('no-new-privileges:true');
      expect(s.user ?? 'image default (node)', name).not.toMatch(/^(root|0)(:|$)/);
    }
    const d = svc['tresor-attest'] as Obj;
    expect((d.volumes as string[]).some((v) => v.endsWith(':/var/lib/tresor-attest'))).toBe(true);
    expect(d.environment.TRESOR_ATTEST_STATE_DIR).toBe('/var/lib/tresor-attest');
    expect(Number(/^(\d+)s$/.exec(d.stop_grace_period)?.[1])).toBeGreaterThan(30);
    expect(svc['router-sim']?.healthcheck.test[0]).toBe('CMD');
  });

  test("the daemon's environment is a valid configuration", () => {
    const e = svc['tresor-attest']?.environment as Record<string, string>;
    const cfg = resolveConfig(
      {
        state_dir: e.TRESOR_ATTEST_STATE_DIR,
        upstreams: [{ listen: e.TRESOR_ATTEST_LISTEN, url: e.TRESOR_ATTEST_UPSTREAM_URL, ca_file: e.TRESOR_ATTEST_CA_FILE, api_key_file: e.TRESOR_ATTEST_API_KEY_FILE, local_token_file: e.TRESOR_ATTEST_LOCAL_TOKEN_FILE, attestation: { release_root_file: e.TRESOR_ATTEST_RELEASE_ROOT_FILE, trust_bundle: e.TRESOR_ATTEST_TRUST_BUNDLE, test_roots_file: e.TRESOR_ATTEST_TEST_ROOTS_FILE } }],
      },
      null,
    );
    expect(cfg.upstreams[0]?.listen).toEqual({ host: '0.0.0.0', port: 8787 });
  });

  test('the daemon answers to the name the app calls it by, and to the host port mapping; not to other names', async () => {
    const cfg = await loadConfig({ env: svc['tresor-attest']?.environment as Record<string, string> });
    const door = listenerDoor(cfg.upstreams[0] as UpstreamConfig);
    const from = (host: string) => ({ rawHeaders: ['Host', host], socket: { localAddress: '::ffff:172.18.0.3' } }) as unknown as IncomingMessage;
    expect(hostAllowed(from(new URL(svc.app?.environment.OPENAI_BASE_URL as string).host), door)).toBe(true);
    expect(hostAllowed(from(`127.0.0.1:${cfg.upstreams[0]?.listen.port}`), door)).toBe(true);
    expect(hostAllowed(from('172.18.0.3:8787'), door)).toBe(true);
    expect(hostAllowed(from('router-sim:8787'), door)).toBe(false);
  });
});

describe('examples/kubernetes', () => {
  const [deployment] = k8s('examples/kubernetes/deployment.yaml');
  const [configMap] = k8s('examples/kubernetes/configmap.yaml');
  const [secret] = k8s('examples/kubernetes/secret.yaml');
  const [pvc] = k8s('examples/kubernetes/pvc.yaml');
  const pod = deployment?.spec.template.spec as Obj;
  const sidecar = (pod.initContainers as Obj[]).find((c) => c.name === 'tresor-attest') as Obj;
  const app = (pod.containers as Obj[]).find((c) => c.name === 'app') as Obj;
  const config = resolveConfig(parse(configMap?.data['config.yaml']) as Record<string, unknown>, '/etc/tresor-attest/config.yaml');

  test('kinds and names line up: Deployment, ConfigMap, Secret, PVC', () => {
    expect([deployment?.kind, configMap?.kind, secret?.kind, pvc?.kind]).toEqual(['Deployment', 'ConfigMap', 'Secret', 'PersistentVolumeClaim']);
    expect(deployment?.apiVersion).toBe('apps/v1');
    expect(deployment?.spec.selector.matchLabels).toEqual(deployment?.spec.template.metadata.labels);
    const volumes = new Map((pod.volumes as Obj[]).map((v) => [v.name as string, v]));
    for (const c of [sidecar, app]) for (const m of (c.volumeMounts ?? []) as Obj[]) expect(volumes.has(m.name), `${c.name} mounts ${m.name}`).toBe(true);
    expect(volumes.get('config')?.configMap.name).toBe(configMap?.metadata.name);
    expect(volumes.get('api-key')?.secret.secretName).toBe(secret?.metadata.name);
    expect(volumes.get('api-key')?.secret.defaultMode).toBe(0o440);
    expect(Object.keys(secret?.stringData)).toEqual(['api-key']);
    expect(volumes.get('state')?.persistentVolumeClaim.claimName).toBe(pvc?.metadata.name);
    for (const item of volumes.get('config')?.configMap.items as Obj[]) expect(Object.keys(configMap?.data)).toContain(item.key);
  });

  test('the ConfigMap is a valid configuration whose paths are where the volumes are mounted', () => {
    const mountOf = (name: string) => (sidecar.volumeMounts as Obj[]).find((m) => m.name === name)?.mountPath as string;
    const u = config.upstreams[0];
    expect(u?.listen).toEqual({ host: '127.0.0.1', port: 8787 });
    expect(config.state_dir).toBe(mountOf('state'));
    expect(config.audit.dir.startsWith(`${mountOf('state')}/`)).toBe(true);
    expect(u?.api_key_file).toBe(`${mountOf('api-key')}/api-key`);
    expect(u?.attestation.release_root_file).toBe(`${mountOf('config')}/release-root.pub`);
    expect(u?.attestation.mode).toBe('enforce');
    expect(sidecar.args).toEqual(['serve', '--config', `${mountOf('config')}/config.yaml`]);
  });

  test('a native sidecar on the pod loopback: the app points at it; probes hit /healthz and /readyz on the listen port', () => {
    expect(sidecar.restartPolicy).toBe('Always');
    const port = config.upstreams[0]?.listen.port as number;
    const env = Object.fromEntries((app.env as Obj[]).map((e) => [e.name, e.value]));
    expect(env.OPENAI_BASE_URL).toBe(`http://127.0.0.1:${port}/v1`);
    expect(env.OPENAI_API_KEY).toBe('placeholder');
    expect(sidecar.ports[0].containerPort).toBe(port);
    const probeUrl = (p: Obj) => /fetch\('([^']+)'\)/.exec((p.exec.command as string[]).join(' '))?.[1];
    expect(probeUrl(sidecar.livenessProbe)).toBe(`http://127.0.0.1:${port}/healthz`);
    expect(probeUrl(sidecar.readinessProbe)).toBe(`http://127.0.0.1:${port}/readyz`);
    expect(probeUrl(sidecar.startupProbe)).toBe(`http://127.0.0.1:${port}/readyz`);
    expect(sidecar.livenessProbe.exec.command[0]).toBe('node');
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(config.shutdown_grace_seconds);
  });

  test('securityContext: non-root, read-only root filesystem, no privilege escalation, no capabilities', () => {
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.runAsUser).not.toBe(0);
    expect(pod.securityContext.fsGroup).toBe(pod.securityContext.runAsUser);
    for (const c of [sidecar, app]) {
      expect(c.securityContext.runAsNonRoot, c.name).toBe(true);
      expect(c.securityContext.readOnlyRootFilesystem, c.name).toBe(true);
      expect(c.securityContext.allowPrivilegeEscalation, c.name).toBe(false);
      expect(c.securityContext.capabilities.drop, c.name).toEqual(['ALL']);
    }
    // The key reaches the sidecar only, as a file.
    expect(JSON.stringify(app)).not.toMatch(/secret|api-key/i);
    expect(JSON.stringify(sidecar.env ?? [])).not.toMatch(/secretKeyRef/);
  });

  test('the notes say how to ship the JSONL audit log with a standard collector', () => {
    const notes = read('examples/kubernetes/README.md');
    expect(notes).toMatch(/audit-\*\.jsonl/);
    expect(notes).toMatch(/Fluent Bit/);
    expect(notes).toMatch(/tresor-verify audit/);
  });
});

describe('examples/otel-collector.yaml and the fleet wiring in examples/kubernetes', () => {
  const collector = parse(read('examples/otel-collector.yaml')) as Obj;
  const [cm, service, deploy] = k8s('examples/kubernetes/otel-collector.yaml');
  const [sidecarDeploy] = k8s('examples/kubernetes/deployment.yaml');
  const sidecar = ((sidecarDeploy?.spec.template.spec as Obj).initContainers as Obj[]).find((c) => c.name === 'tresor-attest') as Obj;

  test('an OTLP/HTTP receiver feeds a logs pipeline whose file exporter writes OTLP/JSON (the --otlp-json input); Kafka and S3 are there, commented', () => {
    for (const c of [collector, parse(cm?.data['config.yaml']) as Obj]) {
      expect(c.receivers.otlp.protocols.http.endpoint).toBe('0.0.0.0:4318');
      expect(c.exporters['file/audit']).toMatchObject({ format: 'json', path: expect.stringMatching(/\.jsonl$/) });
      expect(c.service.pipelines['logs/audit']).toMatchObject({ receivers: ['otlp'], exporters: ['file/audit'] });
    }
    expect(read('examples/otel-collector.yaml')).toMatch(/# kafka\/audit:[\s\S]*encoding: otlp_json[\s\S]*# awss3\/audit:[\s\S]*marshaler: otlp_json/);
  });

  test('the sidecar exports to the collector Service with the standard OTEL_* variables', () => {
    const env = Object.fromEntries((sidecar.env as Obj[]).map((e) => [e.name, e.value]));
    const port = (service?.spec.ports as Obj[])[0]?.port as number;
    expect(env.OTEL_EXPORTER_OTLP_ENDPOINT).toBe(`http://${service?.metadata.name}:${port}`);
    expect(['http/protobuf', 'http/json']).toContain(env.OTEL_EXPORTER_OTLP_PROTOCOL);
    expect(env.OTEL_SERVICE_NAME).toBeTruthy();
    expect(service?.spec.selector).toEqual(deploy?.spec.template.metadata.labels);
    expect(((deploy?.spec.template.spec as Obj).containers as Obj[])[0]?.ports[0].containerPort).toBe(port);
  });
});
