// Property tests of join-token attestation as the public listener serves it (../shared/STYLE.md
// point 6): the hono app of public-app.ts over a real datastore, a real CA (CaManager in memory)
// and the real Issuer, called in-process. Any body (not JSON, any JSON, the right members of any
// type, unknown and prototype-named members, over the size limit) gets a 4xx with a listed code
// whose status matches, a message that never quotes the token, and nothing logged as a failure;
// `parseBody` does the same for every route's schema (wire.ts). A known token with its CSR changed
// (bytes, base64 text, or a well-framed DER element replaced) gets 400 with a csr_* code: the CSR
// is never signed and the token stays usable.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { hostileJson, hostileObject } from "../../test/helpers/json-mutations.ts";
import { CaManager, MemoryCaStorage } from "../ca/index.ts";
import { memoryLogger } from "../runtime/log.ts";
import { TrustDomain } from "../spiffe/index.ts";
import { editTree, fromTree, toTree, walkTree, type DerNode } from "../x509/test-der-tree.ts";
import { bytesEqual, createCsr, fromBase64, generateKeyPair, toBase64 } from "../x509/index.ts";
import { serveBundle } from "./bundle-state.ts";
import { parseServerConfig } from "./config.ts";
import { API_ERROR_STATUS, ApiError } from "./errors.ts";
import { nodeId } from "./ids.ts";
import { Issuer, tokenHash } from "./issuer.ts";
import { publicApp } from "./public-app.ts";
import { RateLimiter } from "./rate-limit.ts";
import { SqliteDatastore } from "./store/index.ts";
import { AttestBody, EntryBody, MAX_BODY_BYTES, parseBody, RenewBody, RotateBody, SvidBody, TokenBody } from "./wire.ts";

const RUNS = fuzzRuns(150);
const TD = TrustDomain.parse("example.org");
const NOW = new Date("2030-01-01T00:00:00Z");
const SOCKET = { incoming: { socket: { remoteAddress: "192.0.2.7" } } };

let dir: string;
let store: SqliteDatastore;
let app: ReturnType<typeof publicApp>;
const logger = memoryLogger();
/** A CSR the server signs (for the node the token is bound to), base64 DER. */
let csrDer: Uint8Array;
let tokens = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tidegate-attest-fuzz-"));
  store = await SqliteDatastore.open(join(dir, "s.db"));
  const settings = parseServerConfig("", "s.yaml");
  const ca = await CaManager.init({
    trustDomain: TD,
    settings: { ...settings.ca },
    storage: new MemoryCaStorage(),
    now: new Date(NOW.getTime() - 60_000),
  });
  const served = await serveBundle(ca.bundle());
  const issuer = new Issuer({ trustDomain: TD, settings, store, ca, logger, now: () => NOW, bundle: () => served, svidLimiter: new RateLimiter(1e9) });
  app = publicApp({ issuer, bundle: () => served, attestLimiter: new RateLimiter(1e9), apiPort: () => 8082, logger });
  const keys = await generateKeyPair();
  csrDer = await createCsr({ ...keys, id: nodeId(TD, "n1") });
});

afterAll(async () => {
  await store?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** A fresh join token for node n1, valid at NOW. */
async function newToken(): Promise<string> {
  const token = `fuzz-token-${++tokens}-${crypto.randomUUID()}`;
  await store.createJoinToken({ tokenHash: tokenHash(token), nodeName: "n1", expiresAt: new Date(NOW.getTime() + 3_600_000), now: NOW });
  return token;
}

interface Answer {
  status: number;
  code: string | null;
  message: string;
}

/** POSTs `body` and checks the answer's shape: 200, or a listed error code with its own status. */
async function attest(body: string): Promise<Answer> {
  const r = await app.request("/v1/attest/join-token", { method: "POST", headers: { "content-type": "application/json" }, body }, SOCKET);
  const json = (await r.json()) as { error?: { code: string; message: string } };
  if (r.status === 200) return { status: 200, code: null, message: "" };
  const { code, message } = json.error ?? { code: "(none)", message: "" };
  expect(code in API_ERROR_STATUS, `code ${code}`).toBe(true);
  expect(API_ERROR_STATUS[code as keyof typeof API_ERROR_STATUS] as number).toBe(r.status);
  expect(message.startsWith("server: ") || message.startsWith("csr: ")).toBe(true);
  return { status: r.status, code, message };
}

function noFailureLogged(): void {
  const failures = logger.lines.filter((l) => l.event === "request_failed");
  expect(failures).toEqual([]);
}

const memberValue = fc.oneof(hostileJson, fc.string({ maxLength: 600 }), fc.constant(toBase64(new Uint8Array([0x30, 0x00]))));

describe("POST /v1/attest/join-token on any body", () => {
  test("a valid token and CSR attest (so what follows is not refused for another reason)", async () => {
    const a = await attest(JSON.stringify({ token: await newToken(), csr: toBase64(csrDer) }));
    expect(a.status).toBe(200);
  });

  test("any text or JSON: a 4xx with a listed code, never the token in the message, nothing logged as failed", async () => {
    const secret = "s3cr3t-token-value";
    const body = fc.oneof(
      fc.string({ unit: "binary", maxLength: 300 }),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      hostileObject.map((o) => JSON.stringify(o)),
      fc.record({ token: fc.oneof(memberValue, fc.constant(secret)), csr: memberValue }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
      fc.tuple(hostileObject, fc.constant(secret)).map(([o, t]) => JSON.stringify({ token: t, csr: "AAAA", ...o })),
      fc.integer({ min: MAX_BODY_BYTES - 20, max: MAX_BODY_BYTES + 20 }).map((n) => JSON.stringify({ token: secret, csr: "A".repeat(Math.max(0, n - 40)) })),
      fc.constantFrom("", "{}", "null", "[]", '{"token":"","csr":""}', '{"__proto__":{"token":"a"},"csr":"AAAA"}'),
    );
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const a = await attest(b);
        expect([400, 401, 413]).toContain(a.status);
        expect(a.message.includes(secret)).toBe(false);
      }),
      { numRuns: RUNS },
    );
    noFailureLogged();
  });

  test("parseBody with every route's schema: the checked value, or 400 bad_request / 413 body_too_large naming no value", () => {
    const schemas = [AttestBody, RenewBody, SvidBody, EntryBody, TokenBody, RotateBody];
    const member = fc.constantFrom("token", "csr", "entry_id", "spiffe_id", "parent_id", "selectors", "ttl_seconds", "dns_names", "node", "root", "__proto__");
    const body = fc.oneof(
      fc.string({ unit: "binary", maxLength: 200 }),
      fc.dictionary(member, fc.oneof(hostileJson, fc.constant("s3cr3t"), fc.array(fc.constant("s3cr3t"), { maxLength: 2 })), { maxKeys: 6 }).map((o) => JSON.stringify(o)),
    );
    fc.assert(
      fc.property(fc.constantFrom(...schemas), body, (schema, raw) => {
        try {
          parseBody(raw, schema);
        } catch (e) {
          if (!(e instanceof ApiError)) throw e;
          expect(["bad_request", "body_too_large"]).toContain(e.code);
          expect(e.message.includes("s3cr3t")).toBe(false);
        }
      }),
      { numRuns: RUNS },
    );
  });

});

describe("a known token with its CSR changed", () => {
  /** Attests with a fresh token and `csr`; checks it is refused with csr_* and leaves the token unused. */
  async function refusedAndTokenKept(csr: string): Promise<void> {
    const token = await newToken();
    const a = await attest(JSON.stringify({ token, csr }));
    expect(a.status, `${a.code}: ${a.message}`).toBe(400);
    expect(a.code?.startsWith("csr_"), `${a.code}: ${a.message}`).toBe(true);
    expect((await store.getJoinToken(tokenHash(token)))?.usedAt).toBeNull();
  }

  test("DER bytes changed or cut", async () => {
    const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 });
    await fc.assert(
      fc.asyncProperty(edits, fc.nat({ max: 4 }), async (changes, cut) => {
        const der = csrDer.slice(0, csrDer.length - cut);
        for (const [at, b] of changes) der[at % der.length] = b;
        fc.pre(!bytesEqual(der, csrDer));
        await refusedAndTokenKept(toBase64(der));
      }),
      { numRuns: RUNS },
    );
    noFailureLogged();
  });

  test("base64 text edited", async () => {
    const text = toBase64(csrDer);
    const edit = fc.array(fc.tuple(fc.nat(), fc.nat({ max: 3 }), fc.string({ unit: fc.constantFrom(..."AZaz09+/= -_\n.%"), maxLength: 3 })), { minLength: 1, maxLength: 2 });
    await fc.assert(
      fc.asyncProperty(edit, async (edits) => {
        const t = edits.reduce((s, [at, cut, ins]) => s.slice(0, at % (s.length + 1)) + ins + s.slice((at % (s.length + 1)) + cut), text);
        const der = fromBase64(t);
        fc.pre(t !== "" && (der === null || !bytesEqual(der, csrDer)));
        await refusedAndTokenKept(t);
      }),
      { numRuns: RUNS },
    );
    noFailureLogged();
  });

  test("a DER element replaced, removed or doubled (well-framed)", async () => {
    const tree = toTree(csrDer);
    const nodes = walkTree(tree);
    const element = fc.record({ tag: fc.constantFrom(0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x30, 0x31, 0xa0), bytes: fc.uint8Array({ maxLength: 24 }) });
    /** The element's replacement: one element, none, or (null) itself twice. */
    const edit: fc.Arbitrary<{ with: DerNode[] | null }> = fc.oneof(element.map((e) => ({ with: [e] })), fc.constant({ with: [] as DerNode[] }), fc.constant({ with: null }));
    await fc.assert(
      fc.asyncProperty(fc.nat(), edit, async (pick, e) => {
        const { path } = nodes[pick % nodes.length]!;
        const der = fromTree(editTree(tree, path, (old) => e.with ?? [old, old]));
        fc.pre(der.length > 0 && !bytesEqual(der, csrDer));
        await refusedAndTokenKept(toBase64(der));
      }),
      { numRuns: RUNS },
    );
    noFailureLogged();
  });
});
