import { decodeBase32, totpAt } from "../../src/auth/totp.js";
import type { Role } from "../../src/domain/scopes.js";
import type { TestVault } from "./vault-harness.js";

/** A clock the test moves: TOTP codes need a new 30 s step for every use. */
export class SteppingClock {
  private ms: number;
  constructor(start = Date.now()) {
    this.ms = start;
  }
  now(): Date {
    return new Date(this.ms);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

export const TEST_PASSWORD = "correct horse 42 battery";

let counter = 0;

export interface EnrolledUser {
  readonly id: string;
  readonly username: string;
  /** The next TOTP code: moves the clock to the next 30 s step first. */
  nextCode(): string;
  /** Logs in (password and a fresh code) and returns the access token. */
  login(): Promise<string>;
  /** Logs in with one of the user's recovery codes: a new session without moving the clock. */
  loginWithRecoveryCode(): Promise<string>;
}

/**
 * An admin user of `tenantId` with `roles`, enrolled (password and TOTP) through the service, as
 * the CLI would create one. The vault must run on `clock`.
 */
export async function enrolledUser(
  vault: TestVault,
  clock: SteppingClock,
  tenantId: string,
  roles: readonly Role[],
): Promise<EnrolledUser> {
  const auth = vault.core.adminAuth;
  const username = `user-${process.pid}-${++counter}`;
  const origin = { ip: "127.0.0.1" };
  const created = await auth.users.create(
    { actor: "test", ip: origin.ip, grantable: "any" },
    { tenantId, username, roles },
  );
  const { secret, recoveryCodes } = await auth.enrollment.enroll(
    created.enrollmentToken,
    TEST_PASSWORD,
    origin,
  );
  const unusedRecoveryCodes = [...recoveryCodes];
  const key = decodeBase32(secret) as Buffer;
  const nextCode = () => {
    clock.advance(30_000);
    return totpAt(key, Math.floor(clock.now().getTime() / 1000));
  };
  await auth.enrollment.confirm(created.enrollmentToken, nextCode(), origin);
  return {
    id: created.user.id,
    username,
    nextCode,
    async login() {
      const pair = await auth.login(
        { username, password: TEST_PASSWORD, code: nextCode() },
        origin,
      );
      return pair.accessToken;
    },
    async loginWithRecoveryCode() {
      const recoveryCode = unusedRecoveryCodes.pop();
      if (recoveryCode === undefined) throw new Error("no recovery code left");
      const pair = await auth.login({ username, password: TEST_PASSWORD, recoveryCode }, origin);
      return pair.accessToken;
    },
  };
}
