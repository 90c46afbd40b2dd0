import https from "node:https";
import type { TlsMaterial } from "../../src/http/tls.js";
import { closeServer, listen, postJson } from "../support/browser.js";

/**
 * A merchant's checkout page on another site than the vault (https://127.0.0.1:<port>, the
 * vault being https://localhost:<port>). Like a real merchant backend it asks the vault for a
 * capture session with its API key on every page load and embeds the frame_url; its script
 * keeps the messages that come from the vault's frame (checked by origin and source).
 */
export interface DemoMerchant {
  readonly origin: string;
  /** The checkout page; `sessionFor` asks for a session for other origins than this page's. */
  checkoutUrl(options?: { sessionFor?: readonly string[] }): string;
  close(): Promise<void>;
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (char) => HTML_ESCAPES[char] as string);
}

function checkoutPage(frameUrl: string, vaultOrigin: string): string {
  // The page's own script: a merchant page, not the vault's frame, so inline is fine here.
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Demo shop: checkout</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 24px; background: #f4f5f7; color: #1a1f36; }
  iframe { display: block; border: 0; width: 520px; height: 400px; background: #fff;
    border-radius: 10px; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.15); }
</style>
<script>
  const VAULT = ${JSON.stringify(vaultOrigin)};
  window.received = [];
  window.addEventListener("message", (event) => {
    const frame = document.getElementById("payvault");
    if (event.origin !== VAULT || frame === null || event.source !== frame.contentWindow) return;
    window.received.push(event.data);
    if (event.data && event.data.type === "payvault:resize") {
      frame.style.height = Math.min(Math.max(event.data.height, 200), 900) + "px";
    }
  });
</script>
</head>
<body>
<h1>Demo shop: checkout</h1>
<p>Card details go into the vault's frame; this page only ever receives a token.</p>
<iframe id="payvault" title="Card details" src="${escapeHtml(frameUrl)}"></iframe>
</body>
</html>
`;
}

export async function startDemoMerchant(options: {
  vaultOrigin: string;
  apiKey: string;
  tls: TlsMaterial;
}): Promise<DemoMerchant> {
  let origin = "";
  const server = https.createServer(
    { key: options.tls.key, cert: options.tls.cert },
    (request, response) => {
      const url = new URL(request.url ?? "/", origin);
      if (url.pathname !== "/checkout") {
        response.writeHead(404).end();
        return;
      }
      const sessionFor = url.searchParams.getAll("session_for");
      postJson(
        `${options.vaultOrigin}/v1/capture/sessions`,
        { origins: sessionFor.length > 0 ? sessionFor : [origin] },
        { authorization: `Bearer ${options.apiKey}` },
        options.tls.cert,
      ).then(
        ({ status, json }) => {
          if (status !== 201) {
            response.writeHead(502, { "content-type": "text/plain" }).end(`sessions: ${status}`);
            return;
          }
          const { frame_url } = json as { frame_url: string };
          response
            .writeHead(200, {
              "content-type": "text/html; charset=utf-8",
              "cache-control": "no-store",
            })
            .end(checkoutPage(frame_url, options.vaultOrigin));
        },
        () => response.writeHead(502).end(),
      );
    },
  );
  origin = `https://127.0.0.1:${await listen(server)}`;
  return {
    origin,
    checkoutUrl(opts = {}) {
      const url = new URL("/checkout", origin);
      for (const allowed of opts.sessionFor ?? []) url.searchParams.append("session_for", allowed);
      return url.toString();
    },
    close: () => closeServer(server),
  };
}
