// Bundles src/ into the studio's dist/ (or the directory given as the first
// argument): studio.js, studio.css and index.html. The output depends only
// on the sources and package-lock.json, so make test can rebuild and compare.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "..", "dist"));
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { studio: join(here, "src", "main.js") },
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  outdir: out,
  legalComments: "eof",
  logLevel: "warning",
});
copyFileSync(join(here, "src", "index.html"), join(out, "index.html"));
