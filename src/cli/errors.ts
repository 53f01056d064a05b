/**
 * A mistake of the user (a missing file, a bad flag value) rather than a bug: the command line
 * prints its message as one line, without a stack trace, and exits with status 2.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}
