/**
 * The little of BCS (Binary Canonical Serialization, as used by Sui/Move) that the routing-receipt
 * intent message needs: u8, u64 little-endian, ULEB128 vector lengths, fixed byte strings.
 */
export class BcsWriter {
  private readonly parts: Uint8Array[] = [];

  u8(v: number): this {
    this.parts.push(Uint8Array.of(v & 0xff));
    return this;
  }

  u64(v: bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    this.parts.push(b);
    return this;
  }

  /** ULEB128 length prefix (BCS caps lengths at 2^31 − 1). */
  uleb128(n: number): this {
    const out: number[] = [];
    let v = n >>> 0;
    do {
      let byte = v & 0x7f;
      v >>>= 7;
      if (v !== 0) byte |= 0x80;
      out.push(byte);
    } while (v !== 0);
    this.parts.push(Uint8Array.from(out));
    return this;
  }

  /** `vector<u8>`: ULEB128 length, then the bytes. */
  bytes(b: Uint8Array): this {
    this.uleb128(b.length);
    this.parts.push(b);
    return this;
  }

  /** A fixed-size byte array (Move `address`): no length prefix. */
  fixed(b: Uint8Array): this {
    this.parts.push(b);
    return this;
  }

  finish(): Uint8Array {
    return new Uint8Array(Buffer.concat(this.parts));
  }
}
