// Large JSON replies of the debug endpoint (the whole map, every marker: 10 MB
// at 11,000 mappings) produced as a stream of chunks, a time slice at a time,
// so that an operator's query never holds the daemon's event loop for more
// than a few milliseconds (neither while the text is built nor while one huge
// string is converted and written). Concatenated, the chunks are exactly
// `safeJson({ ...head, [key]: items.map(toItem) }, 2)`.
import { safeJson } from '../core/escape.js';
import { TimeSlice } from './time-slice.js';

const INDENT = '    ';
/** Characters gathered before a chunk is handed on. */
const CHUNK_CHARS = 64 * 1024;

/** `toItem` turns each item into what is printed, inside the time slices (building 11,000 rows at once held the loop too). */
export async function* jsonWithList<T>(
  head: Record<string, unknown>,
  key: string,
  items: readonly T[],
  slice = new TimeSlice(),
  toItem: (item: T) => unknown = item => item,
): AsyncGenerator<string> {
  if (key in head) throw new Error(`jsonWithList: "${key}" is also in head`);
  const top = safeJson({ ...head, [key]: [] }, 2);
  if (items.length === 0) {
    yield top;
    return;
  }
  // `top` ends with `"key": []\n}`: the list goes between the brackets.
  const open = top.lastIndexOf('[]');
  let chunk = `${top.slice(0, open)}[\n`;
  for (let i = 0; i < items.length; i++) {
    const text = safeJson(toItem(items[i] as T), 2).replace(/\n/g, `\n${INDENT}`);
    chunk += `${INDENT}${text}${i < items.length - 1 ? ',' : ''}\n`;
    if (chunk.length >= CHUNK_CHARS) {
      yield chunk;
      chunk = '';
    }
    if (slice.due(16)) await slice.yield();
  }
  yield `${chunk}  ]${top.slice(open + 2)}`;
}
