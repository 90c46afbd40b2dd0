import type { ErrorCode, FieldError } from "../errors/registry.js";
import { ERRORS } from "../errors/registry.js";

/** An RFC 9457 problem document, built only from the error registry. */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: ErrorCode;
  readonly detail?: string;
  readonly request_id: string;
  readonly errors?: readonly FieldError[];
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json; charset=utf-8";

export function problemOf(
  code: ErrorCode,
  requestId: string,
  extra: { detail?: string | undefined; errors?: readonly FieldError[] | undefined } = {},
): Problem {
  const entry = ERRORS[code];
  return {
    // A URN rather than a web address: the code is the identity; docs/errors.md explains each.
    type: `urn:payvault:problem:${code.toLowerCase().replaceAll("_", "-")}`,
    title: entry.title,
    status: entry.status,
    code,
    ...(extra.detail === undefined ? {} : { detail: extra.detail }),
    request_id: requestId,
    ...(extra.errors === undefined || extra.errors.length === 0 ? {} : { errors: extra.errors }),
  };
}
