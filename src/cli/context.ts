// Thin accessors so that only the entry point touches process globals.
export type Env = Readonly<Record<string, string | undefined>>;

export function argv(): string[] {
  return process.argv.slice(2);
}

export function env(): Env {
  return process.env;
}

export function exitCode(code: number): void {
  process.exitCode = code;
}
