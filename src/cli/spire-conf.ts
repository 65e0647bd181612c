// The SPIRE agent config as doctor and the spire tier read it: the body of a
// brace block (nested blocks matched, strings and # // comments skipped) and a
// top-level string attribute of it. (plugin_data, as SPIRE sends it, is parsed
// properly by core/hcl.ts.)

/** `text` with every # and // comment blanked out (same length, so indexes still point into `text`). */
function withoutComments(text: string): string {
  const out = text.split('');
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      for (i++; i < text.length && text[i] !== '"' && text[i] !== '\n'; i++) if (text[i] === '\\') i++;
    } else if (c === '#' || (c === '/' && text[i + 1] === '/')) {
      for (; i < text.length && text[i] !== '\n'; i++) out[i] = ' ';
    }
  }
  return out.join('');
}

/** The text from `open` (just after a "{") to its matching "}"; undefined when unbalanced. */
export function blockBody(text: string, open: number): string | undefined {
  const code = withoutComments(text);
  let depth = 1;
  for (let i = open; i < code.length; i++) {
    const c = code[i];
    if (c === '"') {
      for (i++; i < code.length && code[i] !== '"'; i++) if (code[i] === '\\') i++;
    } else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return text.slice(open, i);
  }
  return undefined;
}

/** The body of the first `WorkloadAttestor "hexr" { ... }` block that is not commented out (plugin_data nests one). */
export function hexrBlockBody(text: string): string | undefined {
  const head = /WorkloadAttestor\s+"hexr"\s*\{/.exec(withoutComments(text));
  return head ? blockBody(text, head.index + head[0].length) : undefined;
}

/** `key = "value"` at the top level of an HCL block body (not inside plugin_data). */
export function topLevelString(body: string, key: string): string | undefined {
  let depth = 0;
  for (const line of body.split('\n')) {
    const code = line.replace(/^\s*(#|\/\/).*$/, '');
    const m = new RegExp(`^\\s*"?${key}"?\\s*=\\s*"([^"]*)"`).exec(code);
    if (m && depth === 0) return m[1];
    depth += (code.match(/\{/g) ?? []).length - (code.match(/\}/g) ?? []).length;
  }
  return undefined;
}
