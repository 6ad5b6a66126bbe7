// `node --import bench/request-digest-preload.mjs bench/passthrough.mjs ...`: the bare passthrough plus
// only the request digest the daemon takes for a receipt (SHA-256 of every request body chunk, in a
// 'data' listener ahead of undici's, as src/proxy/forward.ts does), for bench/upload-watch.mjs's
// `passthrough-digest` row: the floor of the upload's CPU per MB with the digest the receipt needs.
import { createHash } from 'node:crypto';
import http from 'node:http';

const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (event, req, ...rest) {
  if (event === 'request') {
    const hash = createHash('sha256');
    // prependListener does not start the flow (Readable#on('data') would): undici still does.
    req.prependListener('data', (chunk) => hash.update(chunk));
    req.once('end', () => hash.digest('hex'));
  }
  return emit.call(this, event, req, ...rest);
};
