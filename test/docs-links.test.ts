import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes. */
const anchorOf = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');

const anchorsOf = (markdown: string) =>
  new Set(
    markdown
      .replace(/```[\s\S]*?```/g, '')
      .split('\n')
      .flatMap((line) => /^#{1,6} (.+)$/.exec(line)?.[1] ?? [])
      .map(anchorOf),
  );

/** The relative links and image sources of a page (code blocks aside) that name no existing file or heading. */
function brokenLinks(file: string, read: (path: string) => string | null): string[] {
  const markdown = read(file) ?? '';
  const prose = markdown.replace(/```[\s\S]*?```/g, '');
  const targets = [...prose.matchAll(/\]\(([^)\s]+)\)|src="([^"]+)"/g)].map((match) => match[1] ?? match[2]!);
  return targets.flatMap((target) => {
    if (/^[a-z]+:/i.test(target)) return [];
    const [path = '', anchor] = target.split('#');
    const resolved = path ? join(dirname(file), path) : file;
    const page = read(resolved);
    if (page === null) return [`${target}: no such file`];
    if (anchor && resolved.endsWith('.md') && !anchorsOf(page).has(anchor)) {
      return [`${target}: no heading #${anchor}`];
    }
    return [];
  });
}

const readOrNull = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : null);
const pages = [
  join(root, 'README.md'),
  ...readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => join(root, 'docs', name)),
];

describe('the documentation', () => {
  it.each(pages.map((page) => relative(root, page)))(
    '%s links only to files and headings that exist',
    (page) => {
      expect(brokenLinks(join(root, page), readOrNull)).toEqual([]);
    },
  );

  it('finds a missing file and a missing heading (negative control)', () => {
    const files: Record<string, string> = {
      '/d/a.md': '# Title\n\n[ok](b.md#the-part) [gone](c.md) [lost](b.md#nowhere) [here](#title)\n',
      '/d/b.md': '## The `part`\n',
    };
    expect(brokenLinks('/d/a.md', (path) => files[path] ?? null)).toEqual([
      'c.md: no such file',
      'b.md#nowhere: no heading #nowhere',
    ]);
  });
});
