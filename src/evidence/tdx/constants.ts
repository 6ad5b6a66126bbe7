/**
 * Intel TDX DCAP quote v4 layout (Intel "TDX DCAP Quoting Library API", Appendix A.3/A.4;
 * summarised in shared/reference/tdx.md). All integers little-endian.
 */
export const QUOTE_VERSION = 4;
export const ATT_KEY_TYPE_ECDSA_P256 = 2;
export const TEE_TYPE_TDX = 0x81;
/** Intel's QE vendor ID. */
export const INTEL_QE_VENDOR_ID = '939a7233f79c4ca9940a0db3957f0607';

export const HEADER_BYTES = 48;
export const TD_REPORT_BYTES = 584;
/** The quote signature covers header ‖ TD report body. */
export const SIGNED_BYTES = HEADER_BYTES + TD_REPORT_BYTES; // 632
export const QE_REPORT_BYTES = 384;
export const ECDSA_SIG_BYTES = 64;
export const ECDSA_KEY_BYTES = 64;
/** Certification data types (DCAP QuoteGen: 5 = PCK cert chain, 6 = QE report certification data). */
export const CERT_TYPE_QE_REPORT = 6;
export const CERT_TYPE_PCK_CHAIN = 5;

/** The real quote in shared/vectors is 4936 bytes (3 PEM certificates); 64 KiB bounds any genuine quote. */
export const MAX_QUOTE_BYTES = 64 * 1024;
/** PCK chain is leaf + PCK CA + root: a few KiB of PEM. */
export const MAX_PCK_CHAIN_BYTES = 16 * 1024;
export const MAX_QE_AUTH_BYTES = 4 * 1024;

/** Offsets inside the 584-byte TD report body (tdx.md). */
export const TD = {
  teeTcbSvn: [0, 16],
  mrSeam: [16, 48],
  mrSignerSeam: [64, 48],
  seamAttributes: [112, 8],
  tdAttributes: [120, 8],
  xfam: [128, 8],
  mrTd: [136, 48],
  mrConfigId: [184, 48],
  mrOwner: [232, 48],
  mrOwnerConfig: [280, 48],
  rtmr0: [328, 48],
  rtmr1: [376, 48],
  rtmr2: [424, 48],
  rtmr3: [472, 48],
  reportData: [520, 64],
} as const;

/** SGX enclave report (the QE report) REPORTDATA offset: 320, 64 bytes. */
export const QE_REPORT_DATA_OFFSET = 320;

/** TDATTRIBUTES bit 0: TUD.DEBUG (the host can read and modify TD memory). */
export const TD_ATTRIBUTES_DEBUG_BIT = 0x01;

/** DER SHA-256 of the Intel SGX Root CA (= the colon form in shared/reference/tdx.md; the hex in vectors/README.md transposes two digits). */
export const INTEL_SGX_ROOT_SHA256 = '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3';
