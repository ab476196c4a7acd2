import { describe, expect, test } from "bun:test";
import { CursorFile } from "./cursor-file.ts";
import { OtlpExporter, type OtlpExporterOptions } from "./exporter.ts";
import { memorySource } from "./test-collector.ts";

describe("OtlpExporter options", () => {
  const source = memorySource([]);
  const cursor = new CursorFile("/nonexistent/export.cursor");
  const make = (o: Partial<OtlpExporterOptions>) => () => new OtlpExporter({ url: "http://127.0.0.1:4318/v1/logs", instance: "i", source, cursor, ...o });

  test("a URL with a user name or password is refused without repeating it", () => {
    for (const url of ["https://alice:pa55w0rd@collector:4318/v1/logs", "http://:pa55w0rd@collector/v1/logs", "http://pa55w0rd@collector/"]) {
      let err: any = null;
      try {
        make({ url })();
      } catch (e) {
        err = e;
      }
      expect(err?.code).toBe("export_bad_url");
      expect(err.message).not.toContain("pa55w0rd");
      expect(err.message).toContain("user name or password");
    }
  });

  const refused: [string, Partial<OtlpExporterOptions>, string][] = [
    ["not a URL", { url: "collector:4318" }, "export_bad_url"],
    ["a relative URL", { url: "/v1/logs" }, "export_bad_url"],
    ["ftp", { url: "ftp://collector/v1/logs" }, "export_bad_url"],
    ["a header name with a space", { headers: { "x key": "v" } }, "export_bad_option"],
    ["a header value with a newline", { headers: { "x-key": "a\nb" } }, "export_bad_option"],
    ["a content-type header", { headers: { "Content-Type": "text/plain" } }, "export_bad_option"],
    ["batchMax 0", { batchMax: 0 }, "export_bad_option"],
    ["timeoutMs 1.5", { timeoutMs: 1.5 }, "export_bad_option"],
    ["an empty instance", { instance: "" }, "otlp_bad_event"],
  ];
  for (const [name, o, code] of refused) {
    test(`refuses ${name} with ${code}`, () => {
      expect(make(o)).toThrow(expect.objectContaining({ code }));
    });
  }

  test("the value of a bad header is not repeated", () => {
    expect(make({ headers: { "x-key": "s3cr3t\r\n" } })).toThrow("audit: export: the value of header x-key is not a string without CR, LF or NUL");
  });
});
