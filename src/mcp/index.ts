export * from "./classify.ts";
export * from "./errors.ts";
export * from "./headers.ts";
export * from "./json.ts";
export * from "./message.ts";
export * from "./sse.ts";
export * from "./tool-filter.ts";
export * from "./tool-pin.ts";
