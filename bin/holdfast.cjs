#!/usr/bin/env node
'use strict';
// The holdfast CLI. The TypeScript sources are bundled to dist/ by `npm run build`.
const path = require('node:path');
const fs = require('node:fs');
const cli = path.join(__dirname, '..', 'dist', 'cli.cjs');
if (!fs.existsSync(cli)) {
  process.stderr.write('holdfast: not built yet — run `npm run build` in ' + path.join(__dirname, '..') + '\n');
  process.exit(1);
}
require(cli);
