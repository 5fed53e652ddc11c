// Exit codes of the `wx` command (documented in the README).
export const EXIT = {
  ok: 0,
  /** The command ran and something it was asked to do failed (a file, a job, a query). */
  failure: 1,
  /** Bad arguments or usage. */
  usage: 2,
  /** The daemon could not be reached or started. */
  daemon: 3,
  /** Interrupted (Ctrl-C). */
  interrupted: 130,
  /** A bug: an unexpected exception. */
  internal: 70,
} as const;
