import { readFileSync } from 'node:fs';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';
import * as api from '../src/index.js';

const root = new URL('../', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as Record<string, unknown>;

/** The public surface, spelled out: adding or removing an export is a deliberate change to this list. */
const PUBLIC = [
  'AttestationError',
  'AttestationPolicyError',
  'AttestationUnavailableError',
  'AttestedAgent',
  'BundleRejectedError',
  'BundleSignatureInvalid',
  'CertificateChainError',
  'EvidenceMalformedError',
  'EvidenceStaleError',
  'EvidenceVerificationError',
  'IdentityTagNotAllowedError',
  'MeasurementNotAllowedError',
  'ReceiptRejectedError',
  'ReportDataMismatchError',
  'SPKIMismatchError',
  'TCBBelowFloorError',
  'TresorError',
  'attestationErrorOf',
  'attestedFetch',
  'toAttestationError',
  'verdictFor',
  'verifyAuditLog',
  'verifyNitroDocument',
  'verifyReceipt',
  'verifySnpReport',
  'verifyTdxQuote',
  'verifyTrustBundle',
];

describe('the public surface (src/index.ts)', () => {
  test('exports exactly the public names', () => {
    expect(Object.keys(api).sort()).toEqual([...PUBLIC].sort());
  });

  test('package.json exports only the entry point (with its types) and package.json; the entry is dist/index.js', () => {
    expect(pkg.exports).toEqual({ '.': { types: './dist/index.d.ts', default: './dist/index.js' }, './package.json': './package.json' });
    expect(pkg.main).toBe('dist/index.js');
    expect(pkg.types).toBe('dist/index.d.ts');
  });

  test('every exported value has JSDoc with an @example where it is declared', () => {
    const program = ts.createProgram([`${root}src/index.ts`], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true });
    const checker = program.getTypeChecker();
    const index = checker.getSymbolAtLocation(program.getSourceFile(`${root}src/index.ts`) as ts.SourceFile) as ts.Symbol;
    const missing: string[] = [];
    for (const sym of checker.getExportsOfModule(index)) {
      const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
      if (!(target.flags & ts.SymbolFlags.Value)) continue;
      const docs = ts.displayPartsToString(target.getDocumentationComment(checker));
      const hasExample = target.getJsDocTags(checker).some((t) => t.name === 'example');
      if (!docs || !hasExample) missing.push(sym.name);
    }
    expect(missing).toEqual([]);
  });
});
