'use strict';
// Loads the addon built at install time; null where it was not built (no compiler, not Linux).
// Node-API keeps its ABI across Node and Electron, so one build serves both.
let binding = null;
try {
  binding = require('./build/Release/holdfast_fs.node');
} catch {
  binding = null;
}
module.exports = binding;
