/**
 * `tidegate demo`'s stand-in for a third-party HTTPS API (issue 11): a weather service at a made-up
 * name that wants `Authorization: Bearer TOKEN`. It serves TLS with a certificate from its own
 * throwaway CA (the demo's egress rule names that CA file), compares the token in constant time,
 * and counts what it saw, so the demo can show that the token arrived although the workload never
 * held it. It answers nothing but `GET /v1/forecast?city=NAME`.
 */
import { constantTimeEqual } from "../secrets/index.ts";
import { createTlsRootCa, mintServerCertificate } from "../x509/mint.ts";
import { exportPkcs8Pem, generateKeyPair } from "../x509/keys.ts";
import { encodePem } from "../x509/pem.ts";

export interface ForecastApi {
  readonly port: number;
  /** The CA that issued the API's certificate, PEM: what the egress rule's `ca:` names. */
  readonly caPem: string;
  /** Requests with the right token, with a wrong or missing one. */
  readonly seen: { authorized: number; refused: number };
  stop(): void;
}

const WEATHER = ["sunny", "cloudy", "light rain", "windy", "clear"];

/** A deterministic made-up forecast, so the demo's output is stable. */
export function forecastFor(city: string): { city: string; celsius: number; sky: string } {
  let h = 0;
  for (const c of city) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return { city, celsius: 12 + (h % 15), sky: WEATHER[h % WEATHER.length]! };
}

export async function startForecastApi(o: { hostname: string; address: string; token: string }): Promise<ForecastApi> {
  const now = new Date();
  const ca = await createTlsRootCa({ commonName: "tidegate demo API CA", ttlSeconds: 3600, now });
  const keys = await generateKeyPair({ extractable: true });
  const leaf = await mintServerCertificate({ publicKey: keys.publicKey, signer: { certificate: ca.der, privateKey: ca.privateKey }, ttlSeconds: 3600, now, dnsNames: [o.hostname] });
  const seen = { authorized: 0, refused: 0 };
  const want = `Bearer ${o.token}`;
  const server = Bun.serve({
    hostname: o.address,
    port: 0,
    tls: { cert: encodePem("CERTIFICATE", leaf.der), key: await exportPkcs8Pem(keys.privateKey) },
    fetch(req) {
      const url = new URL(req.url);
      if (!constantTimeEqual(req.headers.get("authorization") ?? "", want)) {
        seen.refused++;
        return Response.json({ error: "a valid bearer token is required" }, { status: 401 });
      }
      seen.authorized++;
      if (req.method !== "GET" || url.pathname !== "/v1/forecast") return Response.json({ error: "not found" }, { status: 404 });
      return Response.json(forecastFor((url.searchParams.get("city") ?? "").slice(0, 64) || "nowhere"));
    },
  });
  return { port: server.port!, caPem: encodePem("CERTIFICATE", ca.der), seen, stop: () => void server.stop(true) };
}
