// Command-line conventions shared by every subcommand:
//   --help / -h     the command's help on stdout, exit 0
//   a bad argument  one line "hexr-pid-mapper CMD: what is wrong" and the
//                   command's usage on stderr, exit 2
// and never a stack trace.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { escapeText } from '../core/escape.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export interface CommandSpec<O extends Options> {
  readonly name: string;
  /** A few lines: printed after an error, and as help when `help` is not given. */
  readonly usage: string;
  /** The full help (--help); defaults to `usage`. */
  readonly help?: string;
  readonly options: O;
  readonly allowPositionals?: boolean;
}

type Values<O extends Options> = ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: true }>>['values'];

export type Parsed<O extends Options> = { ok: true; values: Values<O>; positionals: string[] } | { ok: false; exitCode: number };

/** True when --help or -h comes before any "--". */
export function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

export function printHelp(text: string): number {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  return 0;
}

/** Prints "hexr-pid-mapper NAME: message" and the usage on stderr; returns 2. */
export function usageError(name: string, usage: string, message: string): number {
  process.stderr.write(`hexr-pid-mapper ${name}: ${escapeText(message)}\n${usage.endsWith('\n') ? usage : `${usage}\n`}`);
  return 2;
}

/** node:util parseArgs errors, as one short line. */
export function describeArgError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const msg = e.message ?? String(err);
  const quoted = /'([^']*)'/.exec(msg)?.[1]?.replace(/ <value>$/, '');
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${quoted ?? msg}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return /does not take an argument/.test(msg) ? `option ${quoted} takes no value` : `option ${quoted} needs a value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument "${quoted ?? ''}"`;
    default:
      return msg.split('\n')[0] ?? msg;
  }
}

/** Parses `args` for a command, handling --help and bad arguments the shared way. */
export function parseCommand<O extends Options>(spec: CommandSpec<O>, args: readonly string[]): Parsed<O> {
  if (wantsHelp(args)) return { ok: false, exitCode: printHelp(spec.help ?? spec.usage) };
  try {
    const r = parseArgs({ args: [...args], options: spec.options, strict: true, allowPositionals: spec.allowPositionals ?? false });
    return { ok: true, values: r.values, positionals: r.positionals };
  } catch (err) {
    return { ok: false, exitCode: usageError(spec.name, spec.usage, describeArgError(err)) };
  }
}
