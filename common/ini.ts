/** INI files as pgBackRest writes and reads them (its configuration). Pure. */

/** Sections and keys of an INI file (pgBackRest's format). */
export function parseIni(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let cur = new Map<string, string>();
  out.set('', cur);
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec) {
      cur = out.get(sec[1]) ?? new Map();
      out.set(sec[1], cur);
      continue;
    }
    const i = line.indexOf('=');
    if (i > 0) cur.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return out;
}
