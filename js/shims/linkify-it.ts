/**
 * Stand-in for `linkify-it` in the widget bundle (saves 11 KB of the 400 KB budget).
 *
 * markdown-it always constructs a LinkifyIt but only calls it when its `linkify` option is on, and the widget
 * renders with `linkify: false` (bare URLs stay text; links need Markdown syntax and pass the link allowlist).
 * Every method answers "no link", so turning linkify on by mistake is harmless.
 */
export class LinkifyIt {
  add(): this {
    return this;
  }
  set(): this {
    return this;
  }
  tlds(): this {
    return this;
  }
  test(_text?: string): boolean {
    return false;
  }
  pretest(_text?: string): boolean {
    return false;
  }
  testSchemaAt(_text?: string, _schema?: string, _pos?: number): number {
    return 0;
  }
  match(_text?: string): null {
    return null;
  }
  matchAtStart(_text?: string): null {
    return null;
  }
}
export default LinkifyIt;
