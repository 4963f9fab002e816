// Writes a .br and a .gz next to every large text file of a built folder
// (default dist), so the Rust server's ServeDir can send a compressed body
// without compressing per request. Uses only Node's own zlib. Keeps a
// variant only when it is smaller; a folder built afresh (Vite empties
// dist) never holds a variant older than its file.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { extname, join } from 'node:path'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'

const TEXT = new Set(['.html', '.js', '.mjs', '.css', '.svg', '.json', '.txt', '.map', '.wasm'])
// Below this a compressed body saves less than the headers around it.
const MIN_BYTES = 1024

const root = process.argv[2] ?? 'dist'
let written = 0
for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
  const path = join(entry.parentPath ?? entry.path, entry.name)
  if (!entry.isFile() || !TEXT.has(extname(path))) continue
  const bytes = readFileSync(path)
  if (bytes.length < MIN_BYTES) continue
  const variants = {
    '.br': brotliCompressSync(bytes, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
        [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
      },
    }),
    '.gz': gzipSync(bytes, { level: 9 }),
  }
  for (const [suffix, packed] of Object.entries(variants)) {
    if (packed.length >= bytes.length) continue
    writeFileSync(path + suffix, packed)
    written += 1
  }
}
console.error(`precompress: wrote ${written} .br/.gz files in ${root}`)
