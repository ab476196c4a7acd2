/**
 * The peers of bench/mtls.ts: the nginx backend and the two-hop mutual-TLS tunnels of
 * ../shared/reference/peer-baselines (nginx-stream, haproxy-tcp, stunnel: the same directives as
 * its conf/, resumption on the client hop as there; only the ports and folders differ), plus the
 * bare Bun tunnel (bench/bare-tunnel.ts), all on 127.0.0.1 ports free at start. Certificates as
 * the reference's scripts/gen_certs.sh makes them: an ECDSA P-256 CA, an agent (client) leaf and a
 * server leaf with SPIFFE URI SANs, the server's also with DNS server.example.org.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Child } from "./lib-procs.ts";

/** One tunnel path as wrk sees it: the address it dials and the processes of each hop. */
export interface PathSpec {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** The pids of each hop right now (a master and its workers, or one process). */
  hops(): { client: number[]; server: number[] };
}

export function freePort(hostname = "127.0.0.1"): number {
  const l = Bun.listen({ hostname, port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

function sh(cwd: string, cmd: string): void {
  const r = Bun.spawnSync(["bash", "-c", cmd], { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`bench: ${cmd}: ${r.stderr.toString()}`);
}

/** gen_certs.sh, step for step, into `dir`. */
export function makeCerts(dir: string): void {
  mkdirSync(dir, { recursive: true });
  sh(dir, "openssl ecparam -name prime256v1 -genkey -noout -out ca.key");
  sh(dir, `openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/O=example.org/CN=Perf Test CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt`);
  const leaf = (n: string, uri: string, eku: string, dns?: string) => {
    sh(dir, `openssl ecparam -name prime256v1 -genkey -noout -out ${n}.key.sec1 && openssl pkcs8 -topk8 -nocrypt -in ${n}.key.sec1 -out ${n}.key && rm ${n}.key.sec1`);
    sh(dir, `openssl req -new -key ${n}.key -subj "/O=example.org/CN=${n}" -out ${n}.csr`);
    writeFileSync(join(dir, `${n}.ext`), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=${eku}\nsubjectAltName=URI:${uri}${dns ? `,DNS:${dns}` : ""}\n`);
    sh(dir, `openssl x509 -req -in ${n}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -sha256 -extfile ${n}.ext -out ${n}.crt 2>/dev/null && cat ${n}.crt ${n}.key > ${n}.pem && rm ${n}.csr ${n}.ext`);
  };
  leaf("agent", "spiffe://example.org/agent", "clientAuth");
  leaf("server", "spiffe://example.org/server", "serverAuth,clientAuth", "server.example.org");
  sh(dir, "openssl verify -CAfile ca.crt agent.crt server.crt >/dev/null");
}

const STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";

function nginxHead(run: string, name: string): string {
  return `load_module ${STREAM_MODULE};
worker_processes 1;
daemon off;
pid ${run}/${name}.pid;
error_log ${run}/${name}.err warn;
events { worker_connections 8192; multi_accept on; }
`;
}

export interface Ports {
  backend: number;
  nginxClient: number;
  nginxServer: number;
  haproxyClient: number;
  haproxyServer: number;
  stunnelClient: number;
  stunnelServer: number;
  bareClient: number;
  bareServer: number;
}

/** The configuration files, rendered into `dir` (readable by nginx's workers: 0755/0644). */
export function renderConfigs(dir: string, p: Ports): void {
  const run = join(dir, "run");
  const c = join(dir, "certs");
  const www = join(dir, "www");
  for (const d of [run, www]) mkdirSync(d, { recursive: true });
  chmodSync(dir, 0o755);
  writeFileSync(join(www, "1k"), crypto.getRandomValues(new Uint8Array(1024)), { mode: 0o644 });
  const big = new Uint8Array(1 << 20);
  for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536));
  writeFileSync(join(www, "1m"), big, { mode: 0o644 });
  const tmp = (n: string) => ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((k) => `${k}_temp_path ${run}/tmp_${n}_${k.split("_")[0]};`).join(" ");
  const files: Record<string, string> = {
    "nginx-backend.conf": `worker_processes 1;
daemon off;
pid ${run}/backend.pid;
error_log ${run}/backend.err warn;
events { worker_connections 8192; multi_accept on; }
http {
  ${tmp("backend")}
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 10000000; keepalive_timeout 120s;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${p.backend} backlog=4096;
    root ${www};
    location / { }
  }
}
`,
    "nginx-stream-client.conf": `${nginxHead(run, "nginx-stream-client")}stream {
  proxy_ssl on;
  proxy_ssl_protocols TLSv1.3;
  proxy_ssl_certificate ${c}/agent.crt; proxy_ssl_certificate_key ${c}/agent.key;
  proxy_ssl_trusted_certificate ${c}/ca.crt; proxy_ssl_verify on; proxy_ssl_verify_depth 2;
  proxy_ssl_name server.example.org; proxy_ssl_server_name on;
  server { listen 127.0.0.1:${p.nginxClient} backlog=4096; proxy_pass 127.0.0.1:${p.nginxServer}; proxy_ssl_session_reuse on; }
}
`,
    "nginx-stream-server.conf": `${nginxHead(run, "nginx-stream-server")}stream {
  server {
    listen 127.0.0.1:${p.nginxServer} ssl backlog=4096;
    ssl_protocols TLSv1.3;
    ssl_certificate ${c}/server.crt; ssl_certificate_key ${c}/server.key;
    ssl_client_certificate ${c}/ca.crt; ssl_verify_client on; ssl_verify_depth 2;
    ssl_session_cache shared:NSS:10m;
    proxy_pass 127.0.0.1:${p.backend};
  }
}
`,
    "haproxy-tcp-client.cfg": `global
  nbthread 1
  maxconn 8000
  ssl-server-verify required
defaults
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  mode tcp
listen tun
  bind 127.0.0.1:${p.haproxyClient}
  server remote 127.0.0.1:${p.haproxyServer} ssl crt ${c}/agent.pem ca-file ${c}/ca.crt verify required verifyhost server.example.org sni str(server.example.org) ssl-min-ver TLSv1.3
`,
    "haproxy-tcp-server.cfg": `global
  nbthread 1
  maxconn 8000
  ssl-server-verify required
defaults
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  mode tcp
listen tun
  bind 127.0.0.1:${p.haproxyServer} ssl crt ${c}/server.pem ca-file ${c}/ca.crt verify required ssl-min-ver TLSv1.3
  server backend 127.0.0.1:${p.backend}
`,
    "stunnel-client.conf": `foreground = yes
pid =
debug = 3
[tun]
client = yes
accept = 127.0.0.1:${p.stunnelClient}
connect = 127.0.0.1:${p.stunnelServer}
cert = ${c}/agent.crt
key = ${c}/agent.key
CAfile = ${c}/ca.crt
verifyChain = yes
checkHost = server.example.org
sni = server.example.org
sslVersionMin = TLSv1.3
`,
    "stunnel-server.conf": `foreground = yes
pid =
debug = 3
[tun]
accept = 127.0.0.1:${p.stunnelServer}
connect = 127.0.0.1:${p.backend}
cert = ${c}/server.crt
key = ${c}/server.key
CAfile = ${c}/ca.crt
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.3
`,
  };
  for (const [n, text] of Object.entries(files)) writeFileSync(join(dir, n), text);
}

/** The command of each peer process, by name. */
export function peerCommands(dir: string, p: Ports): Record<string, string[]> {
  const c = join(dir, "certs");
  const bare = (mode: string, listen: number, connect: number, who: string) => [
    process.execPath, join(import.meta.dir, "bare-tunnel.ts"), "--mode", mode, "--listen", `127.0.0.1:${listen}`, "--connect", `127.0.0.1:${connect}`,
    "--cert", `${c}/${who}.crt`, "--key", `${c}/${who}.key`, "--ca", `${c}/ca.crt`,
  ];
  const nginx = (n: string) => ["nginx", "-e", join(dir, "run", `${n}.err`), "-c", join(dir, `${n}.conf`)];
  return {
    backend: nginx("nginx-backend"),
    "nginx-stream-client": nginx("nginx-stream-client"),
    "nginx-stream-server": nginx("nginx-stream-server"),
    "haproxy-tcp-client": ["haproxy", "-db", "-f", join(dir, "haproxy-tcp-client.cfg")],
    "haproxy-tcp-server": ["haproxy", "-db", "-f", join(dir, "haproxy-tcp-server.cfg")],
    "stunnel-client": ["stunnel", join(dir, "stunnel-client.conf")],
    "stunnel-server": ["stunnel", join(dir, "stunnel-server.conf")],
    "bare-client": bare("client", p.bareClient, p.bareServer, "agent"),
    "bare-server": bare("server", p.bareServer, p.backend, "server"),
  };
}

/** `pid` and its children (nginx: the master and its worker). */
export function withChildren(pid: number): number[] {
  try {
    return [pid, ...readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number)];
  } catch {
    return [pid];
  }
}

/** The four peer paths over the started children (by name). */
export function peerPaths(p: Ports, children: ReadonlyMap<string, Child>): PathSpec[] {
  const pid = (n: string) => {
    const c = children.get(n);
    if (c === undefined) throw new Error(`bench: ${n} was not started`);
    return withChildren(c.proc.pid);
  };
  const path = (name: string, prefix: string, port: number): PathSpec => ({ name, host: "127.0.0.1", port, hops: () => ({ client: pid(`${prefix}-client`), server: pid(`${prefix}-server`) }) });
  return [path("nginx-stream", "nginx-stream", p.nginxClient), path("haproxy-tcp", "haproxy-tcp", p.haproxyClient), path("stunnel", "stunnel", p.stunnelClient), path("bare-bun", "bare", p.bareClient)];
}

/** The ports of bench/mtls-http.ts's peers: the backend, and the client and server hop of each L7 mTLS pair. */
export interface HttpPorts {
  backend: number;
  nginxHttpClient: number;
  nginxHttpServer: number;
  haproxyHttpClient: number;
  haproxyHttpServer: number;
}

/**
 * The L7 mutual-TLS pairs of ../shared/reference/peer-baselines (conf/nginx-http-*.conf,
 * conf/haproxy-http-*.cfg: HTTP in, mTLS between the hops with a pooled upstream, HTTP out to the
 * backend; the same directives, only ports and folders differ), with the backend and its files as
 * `renderConfigs` writes them (it also writes the L4 peers' files, which are not started here).
 */
export function renderHttpConfigs(dir: string, p: HttpPorts): void {
  renderConfigs(dir, { backend: p.backend, nginxClient: 0, nginxServer: 0, haproxyClient: 0, haproxyServer: 0, stunnelClient: 0, stunnelServer: 0, bareClient: 0, bareServer: 0 });
  const run = join(dir, "run");
  const c = join(dir, "certs");
  const head = (n: string) => `worker_processes 1;
daemon off;
pid ${run}/${n}.pid;
error_log ${run}/${n}.err warn;
events { worker_connections 8192; multi_accept on; }
`;
  const tmp = (n: string) => ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((k) => `${k}_temp_path ${run}/tmp_${n}_${k.split("_")[0]};`).join(" ");
  const proxyCommon = `proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffer_size 16k; proxy_buffers 16 16k; proxy_max_temp_file_size 0;`;
  const haproxyHead = `global
  nbthread 1
  maxconn 8000
  ssl-server-verify required
defaults
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  mode http
  option http-keep-alive
  timeout http-keep-alive 120s
`;
  const files: Record<string, string> = {
    "nginx-http-client.conf": `${head("nginx-http-client")}http {
  ${tmp("nginx-http-client")}
  access_log off; keepalive_requests 10000000; keepalive_timeout 120s;
  upstream remote { server 127.0.0.1:${p.nginxHttpServer}; keepalive 64; keepalive_requests 10000000; }
  server {
    listen 127.0.0.1:${p.nginxHttpClient} backlog=4096;
    location / {
      proxy_pass https://remote; ${proxyCommon}
      proxy_set_header Host $host;
      proxy_set_header X-Agent-Id "spiffe://example.org/agent";
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_certificate ${c}/agent.crt; proxy_ssl_certificate_key ${c}/agent.key;
      proxy_ssl_trusted_certificate ${c}/ca.crt; proxy_ssl_verify on; proxy_ssl_verify_depth 2;
      proxy_ssl_name server.example.org; proxy_ssl_server_name on; proxy_ssl_session_reuse on;
    }
  }
}
`,
    "nginx-http-server.conf": `${head("nginx-http-server")}http {
  ${tmp("nginx-http-server")}
  access_log off; keepalive_requests 10000000; keepalive_timeout 120s;
  upstream backend { server 127.0.0.1:${p.backend}; keepalive 64; keepalive_requests 10000000; }
  server {
    listen 127.0.0.1:${p.nginxHttpServer} ssl backlog=4096;
    ssl_protocols TLSv1.3;
    ssl_certificate ${c}/server.crt; ssl_certificate_key ${c}/server.key;
    ssl_client_certificate ${c}/ca.crt; ssl_verify_client on; ssl_verify_depth 2;
    ssl_session_cache shared:NHS:10m;
    location / {
      proxy_pass http://backend; ${proxyCommon}
      proxy_set_header Host $host;
      proxy_set_header X-Client-Verify $ssl_client_verify;
      proxy_set_header X-Client-DN $ssl_client_s_dn;
    }
  }
}
`,
    "haproxy-http-client.cfg": `${haproxyHead}listen tun
  bind 127.0.0.1:${p.haproxyHttpClient}
  http-reuse always
  http-request set-header X-Agent-Id spiffe://example.org/agent
  server remote 127.0.0.1:${p.haproxyHttpServer} ssl crt ${c}/agent.pem ca-file ${c}/ca.crt verify required verifyhost server.example.org sni str(server.example.org) ssl-min-ver TLSv1.3
`,
    "haproxy-http-server.cfg": `${haproxyHead}listen tun
  bind 127.0.0.1:${p.haproxyHttpServer} ssl crt ${c}/server.pem ca-file ${c}/ca.crt verify required ssl-min-ver TLSv1.3
  http-reuse always
  http-request set-header X-Client-Verify %[ssl_c_verify]
  http-request set-header X-Client-DN %{+Q}[ssl_c_s_dn]
  server backend 127.0.0.1:${p.backend}
`,
  };
  for (const [n, text] of Object.entries(files)) writeFileSync(join(dir, n), text);
}

/** The command of each process of bench/mtls-http.ts's peers, by name. */
export function httpPeerCommands(dir: string): Record<string, string[]> {
  const nginx = (n: string) => ["nginx", "-e", join(dir, "run", `${n}.err`), "-c", join(dir, `${n}.conf`)];
  return {
    backend: nginx("nginx-backend"),
    "nginx-http-client": nginx("nginx-http-client"),
    "nginx-http-server": nginx("nginx-http-server"),
    "haproxy-http-client": ["haproxy", "-db", "-f", join(dir, "haproxy-http-client.cfg")],
    "haproxy-http-server": ["haproxy", "-db", "-f", join(dir, "haproxy-http-server.cfg")],
  };
}

/** The two L7 peer paths over the started children (by name). */
export function httpPeerPaths(p: HttpPorts, children: ReadonlyMap<string, Child>): PathSpec[] {
  const pid = (n: string) => {
    const c = children.get(n);
    if (c === undefined) throw new Error(`bench: ${n} was not started`);
    return withChildren(c.proc.pid);
  };
  const path = (name: string, port: number): PathSpec => ({ name, host: "127.0.0.1", port, hops: () => ({ client: pid(`${name}-client`), server: pid(`${name}-server`) }) });
  return [path("nginx-http", p.nginxHttpClient), path("haproxy-http", p.haproxyHttpClient)];
}
