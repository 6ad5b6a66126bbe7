import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { generateTestCa, generateTlsIdentity } from '../../src/x509/selfsigned.js';

/** `QuoteCollateralV3` JSON (the vector's and the simulator's shape). */
export type CollateralJson = Record<string, string>;

export interface TestPccs {
  /** https://127.0.0.1:<port> */
  url: string;
  /** PEM of the CA that issued the server's certificate (what `tdx.pccs_ca_file` names). */
  caPem: string;
  /** Requests served, by path (with query). */
  hits: string[];
  /** Collateral served from now on (e.g. a refreshed one); undefined answers 404. */
  serve(c: CollateralJson | undefined): void;
  /** Answer every request with this HTTP status instead (503: "down"); undefined serves again. */
  fail(status: number | undefined): void;
  /** Hold every answer until `release()` (to see concurrent requests wait on one fetch). */
  hold(): () => void;
  close(): Promise<void>;
}

/**
 * A real https PCCS (Intel PCS API v4 shape) serving a `QuoteCollateralV3` split into its four
 * endpoints: the signed JSON texts inside `{"tcbInfo":…,"signature":…}` / `{"enclaveIdentity":…}`,
 * the issuer chains URL-encoded in their headers, the PCK CRL as DER and the root CA CRL as hex.
 */
export async function startTestPccs(initial: CollateralJson): Promise<TestPccs> {
  const ca = await generateTestCa({ commonName: 'test PCCS CA' });
  const tls = await generateTlsIdentity(['127.0.0.1'], { issuer: ca });
  let collateral: CollateralJson | undefined = initial;
  let failing: number | undefined;
  let held: Promise<void> | undefined;
  const hits: string[] = [];
  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const path = req.url ?? '';
    hits.push(path);
    void (async () => {
      if (held) await held;
      if (failing !== undefined) return res.writeHead(failing).end();
      const c = collateral;
      const chain = (h: string, v: string | undefined) => ({ [h]: encodeURIComponent(v ?? '') });
      if (!c) return res.writeHead(404).end();
      if (path.startsWith('/tdx/certification/v4/tcb?fmspc=')) {
        res.writeHead(200, { 'content-type': 'application/json', ...chain('TCB-Info-Issuer-Chain', c.tcb_info_issuer_chain) });
        return res.end(`{"tcbInfo":${c.tcb_info},"signature":"${c.tcb_info_signature}"}`);
      }
      if (path === '/tdx/certification/v4/qe/identity') {
        res.writeHead(200, { 'content-type': 'application/json', ...chain('SGX-Enclave-Identity-Issuer-Chain', c.qe_identity_issuer_chain) });
        return res.end(`{"enclaveIdentity":${c.qe_identity},"signature":"${c.qe_identity_signature}"}`);
      }
      if (path === '/sgx/certification/v4/pckcrl?ca=platform&encoding=der') {
        res.writeHead(200, { 'content-type': 'application/pkix-crl', ...chain('SGX-PCK-CRL-Issuer-Chain', c.pck_crl_issuer_chain) });
        return res.end(Buffer.from(c.pck_crl ?? '', 'hex'));
      }
      if (path === '/sgx/certification/v4/rootcacrl') return res.writeHead(200, { 'content-type': 'text/plain' }).end(c.root_ca_crl);
      res.writeHead(404).end();
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    caPem: ca.certPem,
    hits,
    serve: (c) => void (collateral = c),
    fail: (s) => void (failing = s),
    hold: () => {
      let release!: () => void;
      held = new Promise<void>((r) => (release = r));
      return () => {
        held = undefined;
        release();
      };
    },
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
