/** Split PEM text into one string per certificate block (robust to missing newlines between blocks). */
export function splitPemBlocks(pem: string): string[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map((m) => `${m[0]}\n`);
}
