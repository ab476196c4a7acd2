export { parseAuthority, type Authority } from "./authority.ts";
export { DEFAULT_LIMITS, HTTP1_ERROR_CODES, Http1Error, type Http1ErrorCode, type Http1Limits } from "./errors.ts";
export { HeaderList, NO_HEADERS, type Header } from "./headers.ts";
export { RequestParser } from "./request-parser.ts";
export { ResponseParser } from "./response-parser.ts";
export {
  chunkSizeLine,
  chunkDataEnd,
  encodeChunk,
  lastChunk,
  serializeRequestHead,
  serializeResponseHead,
  requestHeadBytes,
  responseHeadBytes,
  refusalResponse,
  wholeResponse,
  type RequestHeadInit,
  type ResponseHeadInit,
} from "./serialize.ts";
export type { Framing, Http1Event, HttpVersion, RequestEvent, RequestHead, ResponseEvent, ResponseHead } from "./types.ts";
