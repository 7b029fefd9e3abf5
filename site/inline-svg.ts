/**
 * Inlines a rendered diagram into a page. Mermaid gives its SVG elements ids
 * (markers, clip paths, sequence actors) and scopes its CSS with the root id;
 * two diagrams on one page would share those ids, and a `url(#arrowhead)` could
 * resolve into the wrong picture. Every id of an inlined SVG therefore gets a
 * prefix unique on the page, along with everything that refers to it.
 */
import { escapeHtml } from "./html.ts";

export class DiagramError extends Error {
  override name = "DiagramError";
}

const ID_ATTRIBUTE = /\sid="([^"]+)"/g;
const ID_REFERENCE = /#([A-Za-z_][\w-]*)/g;
const ID_LIST_ATTRIBUTE = /\s(aria-labelledby|aria-describedby)="([^"]*)"/g;

/** Drops the XML prolog, doctype and comments (including the source-hash stamp). */
function bareSvg(svg: string, file: string): string {
  const body = svg
    .replace(/<\?xml[^>]*\?>/g, "")
    .replace(/<!DOCTYPE[^>]*>/gi, "")
    .replace(/<!--[\s\S]*?-->/g, "")
    .trim();
  if (!body.startsWith("<svg")) throw new DiagramError(`${file} is not an SVG document (it should start with <svg>). Re-render it with \`npm run diagrams\`.`);
  return body;
}

/** Rewrites every id in `svg` to `<prefix>-<id>`, and every `#id` / aria id reference with it. */
export function prefixSvgIds(svg: string, prefix: string): string {
  const ids = new Set(Array.from(svg.matchAll(ID_ATTRIBUTE), (match) => match[1]!));
  if (ids.size === 0) return svg;
  const renamed = (id: string) => (ids.has(id) ? `${prefix}-${id}` : id);
  return svg
    .replace(ID_ATTRIBUTE, (_, id: string) => ` id="${renamed(id)}"`)
    .replace(ID_REFERENCE, (whole, id: string) => (ids.has(id) ? `#${renamed(id)}` : whole))
    .replace(ID_LIST_ATTRIBUTE, (_, name: string, list: string) => ` ${name}="${list.split(/\s+/).map(renamed).join(" ")}"`);
}

/** Width of the drawing in CSS pixels: mermaid's max-width, else the viewBox width. */
function naturalWidth(svg: string): number | undefined {
  const root = /^<svg[^>]*>/.exec(svg)?.[0] ?? "";
  const maxWidth = /max-width:\s*([\d.]+)px/.exec(root)?.[1];
  const viewBoxWidth = /viewBox="[-\d.]+\s+[-\d.]+\s+([\d.]+)/.exec(root)?.[1];
  const width = Number(maxWidth ?? viewBoxWidth);
  return Number.isFinite(width) && width > 0 ? Math.round(width) : undefined;
}

export interface InlineDiagram {
  /** The SVG file's text. */
  svg: string;
  /** Path shown in errors. */
  file: string;
  /** Unique on the page; becomes the prefix of every id in the SVG. */
  idPrefix: string;
  alt: string;
  caption?: string;
}

/** A `<figure>` holding the SVG itself, labelled for screen readers with the markdown alt text. */
export function inlineDiagramHtml({ svg, file, idPrefix, alt, caption }: InlineDiagram): string {
  if (alt.trim() === "") throw new DiagramError(`${file} is embedded without alt text; write ![what the diagram shows](...).`);
  const labelled = prefixSvgIds(bareSvg(svg, file), idPrefix).replace(
    /^<svg\b/,
    `<svg aria-label="${escapeHtml(alt)}"`,
  );
  const accessible = /^<svg[^>]*\brole="/.test(labelled) ? labelled : labelled.replace(/^<svg\b/, '<svg role="img"');
  const figcaption = caption ? `<figcaption>${escapeHtml(caption)}</figcaption>` : "";
  // The drawing's own width lets phone layouts keep wide diagrams legible (they scroll inside the figure).
  const width = naturalWidth(accessible);
  const style = width ? ` style="--diagram-width: ${width}px"` : "";
  return `<figure class="diagram"${style}>${accessible}${figcaption}</figure>`;
}
