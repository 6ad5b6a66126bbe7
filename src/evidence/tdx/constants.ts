/**
 * Intel TDX DCAP quote v4 layout (Intel "TDX DCAP Quoting Library API", Appendix A.3/A.4;
 * summarised in shared/reference/tdx.md). All integers little-endian.
 */
export const QUOTE_VERSION = 4;
/** Quote v5 (TDX 1.5): a body descriptor (type u16, size u32) follows the header. */
export const QUOTE_VERSION_5 = 5;
/** v5 body types: 2 = TDX 1.0 TD report (584 bytes), 3 = TDX 1.5 TD report (648 bytes). Type 1 (SGX) is refused. */
export const BODY_TYPE_TD10 = 2;
export const BODY_TYPE_TD15 = 3;
export const TD15_REPORT_BYTES = 648;
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

/** Fields a TDX 1.5 TD report (v5 body type 3) adds after the 584-byte TDX 1.0 body. */
export const TD15 = {
  teeTcbSvn2: [584, 16],
  mrServiceTd: [600, 48],
} as const;

/** SGX REPORT body (the QE report, 384 bytes; Intel SGX SDK `sgx_report_body_t`). */
export const QE = {
  cpuSvn: [0, 16],
  miscSelect: [16, 4],
  attributes: [48, 16],
  mrEnclave: [64, 32],
  mrSigner: [128, 32],
  isvProdId: [256, 2],
  isvSvn: [258, 2],
  reportData: [320, 64],
} as const;

/**
 * Intel's production TDX Quoting Enclave (the signed `TD_QE` identity Intel PCS serves, e.g. the
 * one in test/vectors/tdx-dcap-qvl-quote-2025-06.collateral.json): checked when no collateral is
 * given, so a host cannot certify its own "QE". ISVSVN needs collateral to be judged.
 */
export const INTEL_TD_QE_IDENTITY = {
  mrsigner: 'dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5',
  isvprodid: 2,
  miscselect: '00000000',
  miscselectMask: 'ffffffff',
  attributes: '11000000000000000000000000000000',
  attributesMask: 'fbffffffffffffff0000000000000000',
} as const;

/** SGX enclave report (the QE report) REPORTDATA offset: 320, 64 bytes. */
export const QE_REPORT_DATA_OFFSET = 320;

/** TDATTRIBUTES bit 0: TUD.DEBUG (the host can read and modify TD memory). */
export const TD_ATTRIBUTES_DEBUG_BIT = 0x01;
/**
 * TDATTRIBUTES (8 bytes, little-endian u64; Intel TDX module ABI): bits 0-7 TUD (0 DEBUG, 1-7
 * reserved), 8-27 reserved, 28 SEPT_VE_DISABLE, 29 reserved, 30 PKS, 31 KL, 32-62 reserved,
 * 63 PERFMON. Reserved bits must be zero.
 */
export const TD_ATTRIBUTES_RESERVED_MASK = 0x7fff_ffff_2fff_fffen;
export const TD_ATTRIBUTES_SEPT_VE_DISABLE = 1n << 28n;

/** DER SHA-256 of the Intel SGX Root CA (= the colon form in shared/reference/tdx.md; the hex in vectors/README.md transposes two digits). */
export const INTEL_SGX_ROOT_SHA256 = '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3';
