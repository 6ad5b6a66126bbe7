import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody, sendJson, sendJsonError } from './http.js';
import { ATTESTATION_FAULTS, SNP_ONLY_FAULTS, type EvidenceKind } from './mint/router.js';
import { PINAIVU_FAULTS } from './mint/pinaivu.js';
import { NEAR_FAULTS } from './mint/near.js';

/** The fault families `PUT /faults` takes, with the names of `--attestation-fault`, `--pinaivu-fault`, `--near-fault`. */
const FAMILIES = { attestation: ATTESTATION_FAULTS, pinaivu: PINAIVU_FAULTS, near: NEAR_FAULTS } as const;
type Family = keyof typeof FAMILIES;

/** What the control port switches in a running simulator (each family only if that protocol is served). */
export interface SimControlTargets {
  faults: Partial<Record<Family, object>>;
  /** The router evidence form, for the SNP-only attestation faults. */
  evidenceKind?: EvidenceKind;
  rotateTlsKey(): Promise<void>;
  rotateReceiptKey(): Promise<unknown>;
  /** What reached the router: requests per path group (and those that came as HTTP/2 streams), and application requests per TLS key. */
  requests(): { by_path: Record<string, number>; h2_by_path: Record<string, number>; by_tls_key: Record<string, number>; recent: readonly object[] };
}

export interface RunningSimControl {
  port: number;
  close(): Promise<void>;
}

class BadRequest extends Error {}

/** Parse and check a `PUT /faults` body in full before anything changes: family → names to switch on. */
function parseFaults(body: Buffer, t: SimControlTargets): [Family, readonly string[]][] {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw new BadRequest('expected a JSON object such as {"attestation": ["wrongMeasurement"], "pinaivu": [], "near": []}');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new BadRequest('expected a JSON object with attestation, pinaivu and/or near lists');
  const out: [Family, readonly string[]][] = [];
  for (const [family, names] of Object.entries(doc as Record<string, unknown>)) {
    if (!(family in FAMILIES)) throw new BadRequest(`unknown fault family ${JSON.stringify(family)}: expected attestation, pinaivu or near`);
    const f = family as Family;
    if (!Array.isArray(names) || names.some((n) => typeof n !== 'string')) throw new BadRequest(`${f}: expected a list of fault names`);
    const known: readonly string[] = FAMILIES[f];
    for (const n of names as string[]) {
      if (!known.includes(n)) throw new BadRequest(`${f}: unknown fault ${JSON.stringify(n)}; expected one of ${known.join(', ')}`);
      if (f === 'attestation' && t.evidenceKind === 'nitro' && (SNP_ONLY_FAULTS as readonly string[]).includes(n)) throw new BadRequest(`attestation: ${n} is SNP-only, and this simulator serves Nitro evidence`);
    }
    if (names.length > 0 && !t.faults[f]) throw new BadRequest(`${f}: this simulator does not serve that protocol (see --profile / --evidence)`);
    out.push([f, names as string[]]);
  }
  return out;
}

/**
 * The simulator's control port (loopback only), for demos and black-box tests that switch a
 * running simulator process: `PUT /faults` sets each named family's faults to exactly the listed
 * names (an empty list clears them), `POST /rotate-tls-key`, `POST /rotate-receipt-key`; 204 on
 * success, 400 with a message for an unknown name. `GET /requests` says what reached the router.
 */
export async function startSimControl(port: number, t: SimControlTargets): Promise<RunningSimControl> {
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'PUT' && path === '/faults') {
      const body = await readBody(req, 64 * 1024);
      if (body === 'too-large') return sendJsonError(res, 413, 'too_large', 'the fault list is larger than 64 KiB');
      const changes = parseFaults(body, t);
      for (const [family, names] of changes) {
        const target = t.faults[family] as Record<string, unknown> | undefined;
        if (!target) continue;
        for (const n of FAMILIES[family]) target[n] = names.includes(n);
      }
      res.writeHead(204).end();
      return;
    }
    req.resume();
    if (req.method === 'GET' && path === '/requests') return sendJson(res, 200, t.requests());
    if (req.method === 'POST' && path === '/rotate-tls-key') await t.rotateTlsKey();
    else if (req.method === 'POST' && path === '/rotate-receipt-key') await t.rotateReceiptKey();
    else return sendJsonError(res, 404, 'not_found', `no control route ${req.method} ${path}: PUT /faults, POST /rotate-tls-key, POST /rotate-receipt-key`);
    res.writeHead(204).end();
  };
  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof BadRequest) sendJsonError(res, 400, 'bad_request', e.message);
      else sendJsonError(res, 500, 'internal_error', 'simulator control error');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // Loopback only, whatever --host says: this port changes what the simulator proves.
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
