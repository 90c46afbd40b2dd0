import { HttpsJsonClient } from "./https-json.js";
import type { TestCard } from "./test-cards.js";

/** The path the bench's processor charges (the sandbox processor's too). */
export const PROCESSOR_CHARGES_PATH = "/v1/charges";

/** What both forward scenarios send: the same charge, directly or through the vault. */
export interface ForwardBodies {
  /** `POST /v1/charges` to the processor: the card in the clear, as a merchant in scope sends it. */
  readonly direct: string;
  /** `POST /v1/forward` to the vault: the same charge with the token's placeholders. */
  readonly forward: string;
  /** The allowlist entry made for the processor. */
  readonly destination: { readonly host: string; readonly pathPrefix: string };
}

const AMOUNT = 1000;
const CURRENCY = "usd";

/** The processor's charge body, as a merchant's backend would send it with the card in hand. */
export function directChargeBody(card: TestCard): string {
  const { number, exp_month, exp_year } = card;
  return JSON.stringify({
    amount: AMOUNT,
    currency: CURRENCY,
    card: { number, exp_month, exp_year },
  });
}

/**
 * The vault's forward request for the same charge (docs/forwarding.md): a whole-value
 * placeholder renders `number` as a string and the expiry as numbers, so the processor receives
 * byte for byte the shape of `directChargeBody`. No `.cvc`: a CVC is sent once, then deleted.
 */
export function forwardRequestBody(processorOrigin: string, tokenId: string): string {
  return JSON.stringify({
    url: `${processorOrigin}${PROCESSOR_CHARGES_PATH}`,
    method: "POST",
    body: {
      amount: AMOUNT,
      currency: CURRENCY,
      card: {
        number: `{{ ${tokenId}.number }}`,
        exp_month: `{{ ${tokenId}.exp_month }}`,
        exp_year: `{{ ${tokenId}.exp_year }}`,
      },
    },
  });
}

/**
 * Set-up through the vault's API with the bootstrap admin key (tenant:admin for the allowlist,
 * tokens:write for the token; API keys need no step-up): the processor's host and path on the
 * allowlist, and one token of `card` that every forward request detokenizes.
 */
export async function setUpForward(input: {
  readonly vaultUrl: string;
  readonly authorization: string;
  /** `https://localhost:<port>`: the processor as the vault reaches it. */
  readonly processorOrigin: string;
  readonly card: TestCard;
}): Promise<ForwardBodies> {
  const client = new HttpsJsonClient(input.vaultUrl, input.authorization);
  const host = new URL(input.processorOrigin).host;
  try {
    const allowed = await client.send("POST", "/v1/forward/destinations", {
      host,
      path_prefix: PROCESSOR_CHARGES_PATH,
    });
    if (allowed.status !== 201 && allowed.status !== 409) {
      throw new Error(`POST /v1/forward/destinations: status ${allowed.status}`);
    }
    const token = await client.send("POST", "/v1/tokens", { card: input.card });
    const id = (token.body as { id?: unknown } | undefined)?.id;
    if ((token.status !== 201 && token.status !== 200) || typeof id !== "string") {
      throw new Error(`POST /v1/tokens: status ${token.status}`);
    }
    return {
      direct: directChargeBody(input.card),
      forward: forwardRequestBody(input.processorOrigin, id),
      destination: { host, pathPrefix: PROCESSOR_CHARGES_PATH },
    };
  } finally {
    client.close();
  }
}

/** Checks one forward end to end before the load, so a set-up mistake is one clear error. */
export async function checkForward(
  vaultUrl: string,
  authorization: string,
  bodies: ForwardBodies,
): Promise<void> {
  const client = new HttpsJsonClient(vaultUrl, authorization);
  try {
    const res = await client.send("POST", "/v1/forward", JSON.parse(bodies.forward));
    const relayed = res.body as { status?: unknown; code?: unknown; detail?: unknown } | undefined;
    if (res.status !== 200 || relayed?.status !== 200) {
      throw new Error(
        `POST /v1/forward: status ${res.status}, processor ${String(relayed?.status)} ` +
          `${String(relayed?.code ?? "")} ${String(relayed?.detail ?? "")}`,
      );
    }
  } finally {
    client.close();
  }
}
