/**
 * An `https://host[:port]` URL with nothing after the authority (no path, query, fragment, user
 * name or password), as the identity server's address (`--server`, `agent.server`) and the
 * kubelet's (`--kubelet-url`) must be. Gives the URL, or why the text is not one; each caller
 * words its own error, quoting the text with quoteUrl (src/errors.ts), which never repeats a user
 * name or password.
 */
export type HttpsOrigin = { readonly url: URL; readonly why: null } | { readonly url: null; readonly why: "not_a_url" | "credentials" | "not_an_origin" };

export function httpsOrigin(text: string): HttpsOrigin {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { url: null, why: "not_a_url" };
  }
  if (url.username !== "" || url.password !== "") return { url: null, why: "credentials" };
  if (url.protocol !== "https:" || (url.pathname !== "/" && url.pathname !== "") || url.search !== "" || url.hash !== "") return { url: null, why: "not_an_origin" };
  return { url, why: null };
}
