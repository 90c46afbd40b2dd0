/**
 * The vault's own origin (`https://host[:port]`) as browsers and clients reach it: the issuer and
 * audience of capture sessions and the audience of capture payloads. Set by PAYVAULT_PUBLIC_URL;
 * otherwise learnt from the listener once it listens (the address a single node answers on).
 */
export class PublicOrigin {
  private value: string | undefined;
  private readonly configured: boolean;

  constructor(configured: string | undefined) {
    this.value = configured === undefined ? undefined : new URL(configured).origin;
    this.configured = configured !== undefined;
  }

  /** Takes the listener's URL unless PAYVAULT_PUBLIC_URL fixed the origin. */
  learn(url: string): void {
    if (!this.configured) this.value = new URL(url).origin;
  }

  get(): string {
    if (this.value === undefined) throw new Error("the vault's public origin is not known yet");
    return this.value;
  }
}
