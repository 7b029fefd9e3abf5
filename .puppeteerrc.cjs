/**
 * Puppeteer (pulled in by mermaid-cli) reads this file during its install
 * script: it must not download a browser. Diagrams render with Debian's
 * Chromium (site/chromium.ts), and every npm (10 and 11) honours this file,
 * whereas package.json's allowScripts is npm 11 only.
 */
module.exports = { skipDownload: true };
