/**
 * Pass every SSE byte through as it arrives except the final `data: [DONE]` event, which is
 * withheld until the exchange's observer is done: in strict mode until the receipt verifies, in
 * every mode until the receipt job is journaled (the app must not see the end before that). Only a line start that is
 * (or may still become) the marker is held; a partial line that turns out to be something else
 * is released with the next chunk.
 */
const MARKERS = [Buffer.from('data: [DONE]'), Buffer.from('data:[DONE]')];
/** In every marker: a chunk without it holds no complete marker. */
const DONE = Buffer.from('[DONE]');
const EMPTY = Buffer.alloc(0);

function prefixOfMarker(tail: Buffer): boolean {
  return MARKERS.some((m) => tail.length < m.length && m.subarray(0, tail.length).equals(tail));
}

export class DoneHolder {
  private held: Buffer = EMPTY;
  private atLineStart = true;
  private found = false;

  /** Bytes that may go to the app now. */
  push(chunk: Uint8Array): Buffer {
    const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.found) {
      this.held = Buffer.concat([this.held, c]);
      return EMPTY;
    }
    // Most chunks are whole lines without the marker: nothing held before, nothing to hold now
    // (one search per chunk instead of the line scan below; the chunk itself goes on, no copy).
    if (this.held.length === 0 && this.plain(c)) {
      this.atLineStart = true;
      return c;
    }
    const buf = this.held.length ? Buffer.concat([this.held, c]) : c;
    this.held = EMPTY;
    // A complete marker at a line start: hold from there to the end.
    for (const m of MARKERS) {
      let from = 0;
      for (;;) {
        const p = buf.indexOf(m, from);
        if (p < 0) break;
        if ((p === 0 && this.atLineStart) || (p > 0 && buf[p - 1] === 0x0a)) {
          this.found = true;
          this.held = Buffer.from(buf.subarray(p));
          return buf.subarray(0, p);
        }
        from = p + 1;
      }
    }
    // The last line may still become the marker: hold it back.
    const nl = buf.lastIndexOf(0x0a);
    const start = nl >= 0 ? nl + 1 : this.atLineStart ? 0 : -1;
    if (start >= 0 && start < buf.length && prefixOfMarker(buf.subarray(start))) {
      this.held = Buffer.from(buf.subarray(start));
      this.atLineStart = true;
      return buf.subarray(0, start);
    }
    this.atLineStart = buf.length > 0 ? buf[buf.length - 1] === 0x0a : this.atLineStart;
    return buf;
  }

  /**
   * A chunk that ends a line and holds no marker at a line start. The usual chunk is one event of
   * one line (`data: {...}` and the blank line that ends it): its only line start is its first byte,
   * so a search for the first newline (one byte: the cheapest search there is) and a look at the
   * line's first bytes settle it; any other chunk is searched for `[DONE]`.
   */
  private plain(c: Buffer): boolean {
    const n = c.length;
    if (n === 0 || c[n - 1] !== 0x0a) return false;
    const oneLine = c.indexOf(0x0a) >= n - 2;
    // `data: [` / `data:[` at a line start may be the marker: searched.
    if (oneLine && !(this.atLineStart && c[0] === 0x64 && (c[5] === 0x5b || c[6] === 0x5b))) return true;
    return c.indexOf(DONE) < 0;
  }

  /** Whether the stream's `[DONE]` marker was seen (and is held). */
  get sawDone(): boolean {
    return this.found;
  }

  /** What is held back (the marker and anything after it, or a partial line). */
  release(): Buffer {
    const h = this.held;
    this.held = EMPTY;
    return h;
  }
}
