/** The simulator's catalogue of compound routes `region/provider/model_key`. */
export const CHAT_ROUTES = [
  'eu/tresor/gpt-oss-120b',
  'lux/tresor/kimi-k2.5',
  'global/redpill/gpt-oss-120b',
  'eu/privatemode/kimi-k2.6',
  'global/chutes/kimi-k2.6',
  'global/tinfoil/deepseek-v4-pro',
] as const;

export const TRANSCRIPTION_ROUTES = ['eu/privatemode/whisper-large-v3', 'global/tinfoil/whisper-large-v3-turbo', 'global/tinfoil/voxtral-small-24b'] as const;

const ALL: readonly string[] = [...CHAT_ROUTES, ...TRANSCRIPTION_ROUTES];

/**
 * Normalise a requested model to the route the caller asked for, and resolve it to a concrete
 * route: a compound id is itself; `auto/auto/<key>`, a bare key, or hints pick the first
 * matching route (preferring the `region`/`provider` hints).
 */
export function resolveRoute(model: string, hints: { region?: unknown; provider?: unknown } = {}): { requested: string; candidates: string[] } | undefined {
  const parts = model.split('/');
  let region: string | undefined;
  let provider: string | undefined;
  let key: string;
  if (parts.length === 3) {
    [region, provider, key] = parts as [string, string, string];
    if (region === 'auto') region = undefined;
    if (provider === 'auto') provider = undefined;
  } else if (parts.length === 1 && parts[0]) {
    key = parts[0];
    region = typeof hints.region === 'string' ? hints.region : undefined;
    provider = typeof hints.provider === 'string' ? hints.provider : undefined;
  } else return undefined;
  const candidates = ALL.filter((r) => {
    const [rr, pp, kk] = r.split('/');
    return kk === key && (!region || rr === region) && (!provider || pp === provider);
  });
  if (candidates.length === 0) return undefined;
  const requested = parts.length === 3 ? model : `${region ?? 'auto'}/${provider ?? 'auto'}/${key}`;
  return { requested, candidates };
}
