// What the test S3 server says and reads on the wire besides bytes: its errors and the small XML
// documents of the S3 REST API.

/** An S3 error answer: status, code, message and the extra elements S3 puts in its `<Error>`. */
export class S3Error extends Error {
  readonly status: number;
  readonly code: string;
  readonly fields: Record<string, string | number>;
  constructor(status: number, code: string, message: string, fields: Record<string, string | number> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

const NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/';

export function escapeXml(text: string): string {
  return text.replace(/[&<>"'\r]/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** `<name>text</name>`, or nothing for `undefined`. */
export function element(name: string, value: string | number | boolean | undefined): string {
  return value === undefined ? '' : `<${name}>${escapeXml(String(value))}</${name}>`;
}

export function xmlDocument(root: string, body: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${NAMESPACE}">${body}</${root}>`;
}

export function errorDocument(error: S3Error, requestId: string, hostId: string): string {
  const fields = Object.entries(error.fields)
    .map(([name, value]) => element(name, value))
    .join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error>${element('Code', error.code)}${element('Message', error.message)}${fields}${element('RequestId', requestId)}${element('HostId', hostId)}</Error>`;
}

export interface XmlElement {
  name: string;
  children: XmlElement[];
  text: string;
}

/** The first child called `name`. */
export function child(parent: XmlElement, name: string): XmlElement | undefined {
  return parent.children.find((candidate) => candidate.name === name);
}

export const malformedXml = (): S3Error =>
  new S3Error(
    400,
    'MalformedXML',
    'The XML you provided was not well-formed or did not validate against our published schema',
  );

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (_, entity: string) => {
    if (entity.startsWith('#x')) return String.fromCodePoint(Number.parseInt(entity.slice(2), 16));
    if (entity.startsWith('#')) return String.fromCodePoint(Number.parseInt(entity.slice(1), 10));
    const decoded = ENTITIES[entity];
    if (decoded === undefined) throw malformedXml();
    return decoded;
  });
}

/**
 * Parses the request bodies S3 takes (Delete, CompleteMultipartUpload, CreateBucketConfiguration):
 * elements and text, namespace prefixes dropped; anything not well-formed is MalformedXML.
 */
export function parseXml(source: string): XmlElement {
  const tokens =
    /<\?.*?\?>|<!--.*?-->|<!\[CDATA\[(.*?)\]\]>|<\/([^\s>]+)\s*>|<([^\s/>]+)([^>]*?)(\/?)>|([^<]+)/gs;
  const root: XmlElement = { name: '', children: [], text: '' };
  const open: XmlElement[] = [root];
  let consumed = 0;
  for (const match of source.matchAll(tokens)) {
    if (match.index !== consumed) throw malformedXml();
    consumed += match[0].length;
    const [token, cdata, closing, opening, attributes, selfClosing, text] = match;
    const current = open.at(-1)!;
    if (cdata !== undefined) current.text += cdata;
    else if (closing !== undefined) {
      if (open.length === 1 || current.name !== localName(closing)) throw malformedXml();
      open.pop();
    } else if (opening !== undefined) {
      if (!/^(\s+[^\s=]+\s*=\s*("[^"]*"|'[^']*'))*\s*$/.test(attributes ?? '')) throw malformedXml();
      const node: XmlElement = { name: localName(opening), children: [], text: '' };
      current.children.push(node);
      if (!selfClosing) open.push(node);
    } else if (text !== undefined) {
      if (open.length === 1 && text.trim() !== '') throw malformedXml();
      current.text += decodeEntities(text);
    } else if (token.startsWith('<') && !token.startsWith('<?') && !token.startsWith('<!--')) {
      throw malformedXml();
    }
  }
  if (consumed !== source.length || open.length !== 1 || root.children.length !== 1) throw malformedXml();
  return root.children[0]!;
}

function localName(name: string): string {
  return name.slice(name.indexOf(':') + 1);
}
