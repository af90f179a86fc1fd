// A lesson's Markdown as DOM nodes, never as HTML: every piece of text goes in through
// textContent, so nothing a lesson (or a translator) writes can become markup or script.
// What the lessons use and nothing more: headings, paragraphs, bulleted and numbered lists,
// **bold**, *italic* (or _italic_), `code`, links to this site or the web, and figures on a
// line of their own, ![caption](figure:ID), which the caller turns into nodes.

const FIGURE = /^!\[([^\]]*)\]\(figure:([A-Za-z0-9_-]+)\)$/;
const HEADING = /^(#{1,6})\s+(.*?)\s*#*$/;
const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*\d{1,9}[.)]\s+(.*)$/;
const LINK = /^\[([^\]]+)\]\(([^)\s]+)\)/;
const SAFE_HREF = /^(https?:\/\/|\/(?!\/)|#)/i;

function node(tag, children) {
  const made = document.createElement(tag);
  made.append(...children);
  return made;
}

// The closing ``marker`` of an emphasis opened at ``from`` (-1: none): not right after the
// opener, not after a space, and for "_" not inside a word (snake_case stays as it is).
function closing(text, marker, from) {
  for (let at = text.indexOf(marker, from + 1); at !== -1; at = text.indexOf(marker, at + 1)) {
    if (text[at - 1] === " ") continue;
    if (marker === "*" && text[at + 1] === "*") {
      at += 1; // part of a "**": not this emphasis's end
      continue;
    }
    if (marker === "_" && /\w/.test(text[at + 1] || "")) continue;
    return at;
  }
  return -1;
}

// Inline text: a list of strings and elements.
export function inline(text) {
  const out = [];
  let plain = "";
  const flush = () => {
    if (plain) out.push(plain);
    plain = "";
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\" && i + 1 < text.length && /[\\`*_[\]()#!+-]/.test(text[i + 1])) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (text.startsWith("**", i) && text[i + 2] && text[i + 2] !== " ") {
      const end = text.indexOf("**", i + 2);
      if (end > i + 2) {
        flush();
        out.push(node("strong", inline(text.slice(i + 2, end))));
        i = end + 2;
        continue;
      }
    }
    const wordStart = i === 0 || !/\w/.test(text[i - 1]);
    if ((c === "*" || (c === "_" && wordStart)) && text[i + 1] && text[i + 1] !== " " && text[i + 1] !== c) {
      const end = closing(text, c, i);
      if (end > i + 1) {
        flush();
        out.push(node("em", inline(text.slice(i + 1, end))));
        i = end + 1;
        continue;
      }
    }
    if (c === "`") {
      const end = text.indexOf("`", i + 1);
      if (end > i + 1) {
        flush();
        const code = document.createElement("code");
        code.textContent = text.slice(i + 1, end);
        out.push(code);
        i = end + 1;
        continue;
      }
    }
    if (c === "[") {
      const link = LINK.exec(text.slice(i));
      if (link && SAFE_HREF.test(link[2])) {
        flush();
        const a = node("a", inline(link[1]));
        a.setAttribute("href", link[2]);
        if (/^https?:/i.test(link[2])) a.setAttribute("rel", "noopener noreferrer");
        out.push(a);
        i += link[0].length;
        continue;
      }
    }
    plain += c;
    i += 1;
  }
  flush();
  return out;
}

// ``text`` as a fragment of block elements. ``figure(id, alt)`` makes the node of a figure
// line (null: the line is dropped); a heading "#" or "##" is an h2 (the page's h1 is the
// lesson's title), "###" an h3, and so on.
export function renderMarkdown(text, { figure = () => null } = {}) {
  const out = document.createDocumentFragment();
  let paragraph = [];
  let list = null; // { tag, items: [[line, ...], ...] }

  const endParagraph = () => {
    if (paragraph.length) out.append(node("p", inline(paragraph.join(" "))));
    paragraph = [];
  };
  const endList = () => {
    if (list) out.append(node(list.tag, list.items.map((lines) => node("li", inline(lines.join(" "))))));
    list = null;
  };
  const endBlocks = () => {
    endParagraph();
    endList();
  };

  for (const raw of String(text).replace(/\r\n?/g, "\n").split("\n")) {
    const line = raw.trim();
    if (!line) {
      endBlocks();
      continue;
    }
    const shown = FIGURE.exec(line);
    if (shown) {
      endBlocks();
      const made = figure(shown[2], shown[1]);
      if (made) out.append(made);
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      endBlocks();
      const level = Math.min(6, Math.max(2, heading[1].length));
      out.append(node(`h${level}`, inline(heading[2])));
      continue;
    }
    const bullet = BULLET.exec(raw);
    const numbered = bullet ? null : NUMBERED.exec(raw);
    if (bullet || numbered) {
      endParagraph();
      const tag = bullet ? "ul" : "ol";
      if (list && list.tag !== tag) endList();
      if (!list) list = { tag, items: [] };
      list.items.push([(bullet || numbered)[1].trim()]);
      continue;
    }
    if (list) {
      // A line that starts no new block continues the last item (lazy continuation).
      list.items[list.items.length - 1].push(line);
      continue;
    }
    paragraph.push(line);
  }
  endBlocks();
  return out;
}
