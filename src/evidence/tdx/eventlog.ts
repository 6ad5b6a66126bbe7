import { MalformedError } from '../../errors/index.js';
import { concatBytes, fromHex, sha384, utf8 } from '../../util/bytes.js';

/**
 * dstack RTMR event log (the `event_log` of a dstack TDX report, a JSON array) and its RTMR3
 * replay (aci-pinaivu-receipts.md §1.3, after dstack's `dstack-verifier`):
 *   mr = 0^48; for each event with imr == 3: mr = SHA-384(mr ‖ pad48(digest))
 * where dstack runtime events (event_type 0x08000001) have
 *   digest = SHA-384(u32_le(event_type) ‖ ":" ‖ event ‖ ":" ‖ payload)
 * and every other event uses its logged digest.
 */
export interface DstackEvent {
  imr: number;
  eventType: number;
  digest: Uint8Array;
  /** Event name (dstack runtime events: "app-id", "compose-hash", "os-image-hash", "system-ready", …). */
  event: string;
  payload: Uint8Array;
}

export const DSTACK_RUNTIME_EVENT_TYPE = 0x08000001;
/** A dstack CVM logs a few dozen events (firmware, kernel, runtime); 4096 bounds a hostile log. */
export const MAX_EVENTS = 4096;
export const MAX_EVENT_PAYLOAD_BYTES = 64 * 1024;

function bad(message: string): never {
  throw new MalformedError('ERR_TDX_EVENT_LOG', message);
}

/** Parse the event log (a JSON array, or the JSON-encoded string dstack serves). Throws only MalformedError. */
export function parseDstackEventLog(input: unknown): DstackEvent[] {
  let value = input;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value) as unknown;
    } catch {
      bad('expected event_log to be a JSON array, got a string that does not parse');
    }
  }
  if (!Array.isArray(value)) bad(`expected event_log to be an array, got ${value === null ? 'null' : typeof value}`);
  if (value.length > MAX_EVENTS) bad(`expected at most ${MAX_EVENTS} events, got ${value.length}`);
  return value.map((e: unknown, i): DstackEvent => {
    if (typeof e !== 'object' || e === null) bad(`expected event_log[${i}] to be an object`);
    const o = e as Record<string, unknown>;
    const imr = o.imr;
    const eventType = o.event_type;
    if (typeof imr !== 'number' || !Number.isInteger(imr) || imr < 0 || imr > 3) bad(`expected event_log[${i}].imr in 0..3, got ${String(imr)}`);
    if (typeof eventType !== 'number' || !Number.isInteger(eventType) || eventType < 0 || eventType > 0xffffffff) {
      bad(`expected event_log[${i}].event_type to be a u32, got ${String(eventType)}`);
    }
    if (typeof o.digest !== 'string') bad(`expected event_log[${i}].digest to be hex`);
    const digest = fromHex(o.digest, { field: `event_log[${i}].digest`, code: 'ERR_TDX_EVENT_LOG' });
    if (digest.length > 48) bad(`expected event_log[${i}].digest of at most 48 bytes, got ${digest.length}`);
    const event = o.event ?? '';
    if (typeof event !== 'string') bad(`expected event_log[${i}].event to be a string`);
    const payloadHex = o.event_payload ?? '';
    if (typeof payloadHex !== 'string' || payloadHex.length > 2 * MAX_EVENT_PAYLOAD_BYTES) bad(`expected event_log[${i}].event_payload to be hex of at most ${MAX_EVENT_PAYLOAD_BYTES} bytes`);
    const payload = fromHex(payloadHex, { field: `event_log[${i}].event_payload`, code: 'ERR_TDX_EVENT_LOG' });
    return { imr, eventType, digest, event, payload };
  });
}

/** The digest an event extends into its RTMR. */
export function eventDigest(e: DstackEvent): Uint8Array {
  if (e.eventType !== DSTACK_RUNTIME_EVENT_TYPE) return e.digest;
  const type = new Uint8Array(4);
  new DataView(type.buffer).setUint32(0, e.eventType, true);
  return sha384(type, utf8(':'), utf8(e.event), utf8(':'), e.payload);
}

/** Replay the events of one RTMR from zero. */
export function replayRtmr(events: readonly DstackEvent[], imr: number): Uint8Array {
  let mr: Uint8Array = new Uint8Array(48);
  for (const e of events) {
    if (e.imr !== imr) continue;
    const d = eventDigest(e);
    const padded = new Uint8Array(48);
    padded.set(d);
    mr = sha384(concatBytes(mr, padded));
  }
  return mr;
}
