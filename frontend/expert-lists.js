// The workspace's lists: one page of rows from one request (the page's JSON carries every row's
// text and a sprite URL; one PNG holds the page's thumbnails), paged on the server, with one
// row selected at a time; J/K step through the rows and on across pages.
import { element } from "./api.js";

export class ItemList {
  // fetchPage(offset, limit) -> {total, offset, items, sprite}; describe(item) -> {title, lines};
  // onSelect(item) opens it; onPage(page) hears of every page loaded (counts, filters).
  constructor({ list, range, prev, next, fetchPage, describe, onSelect, onPage = () => {}, limit = 20, empty }) {
    Object.assign(this, { list, range, fetchPage, describe, onSelect, onPage, limit, empty });
    this.offset = 0;
    this.items = [];
    this.total = 0;
    this.selected = -1;
    prev.addEventListener("click", () => this.page(-1));
    next.addEventListener("click", () => this.page(1));
    this.prevButton = prev;
    this.nextButton = next;
  }

  // Load the page at this.offset; select the row at ``keep`` (clamped), or none when -1.
  async load(keep = 0) {
    const page = await this.fetchPage(this.offset, this.limit);
    if (!page.items.length && page.total > 0 && this.offset > 0) {
      // The last row of the last page went (approved, rejected): show the page before.
      this.offset = Math.max(0, this.offset - this.limit);
      return this.load(this.limit - 1);
    }
    this.items = page.items;
    this.total = page.total;
    this.onPage(page);
    this.render(page.sprite);
    const first = this.offset + 1;
    const last = this.offset + this.items.length;
    this.range.textContent = this.total ? `${first}–${last} of ${this.total}` : "None";
    this.prevButton.disabled = this.offset === 0;
    this.nextButton.disabled = last >= this.total;
    if (this.items.length && keep >= 0) await this.select(Math.min(keep, this.items.length - 1));
    else {
      this.selected = -1;
      if (!this.items.length) await this.onSelect(null);
    }
  }

  render(sprite) {
    const rows = this.items.map((item, n) => {
      const { title, lines, badge } = this.describe(item);
      const thumb = element("span", { class: "thumb", "aria-hidden": "true" });
      if (sprite) {
        // Set through the CSS object model: the page's CSP allows no inline style attributes.
        thumb.style.backgroundImage = `url("${sprite.url}")`;
        const [row, column] = [Math.floor(n / sprite.columns), n % sprite.columns];
        thumb.style.backgroundPosition = `-${column * sprite.tile}px -${row * sprite.tile}px`;
      }
      const text = element(
        "span",
        { class: "text" },
        element("strong", { text: title }),
        ...lines.map((line) => element("span", { text: line })),
      );
      if (badge) text.append(element("span", { class: "badge", text: badge }));
      const button = element("button", { type: "button", class: "item", "data-testid": "item", "aria-current": "false" }, thumb, text);
      button.addEventListener("click", () => this.select(n));
      return element("li", {}, button);
    });
    this.list.replaceChildren(...rows);
    if (!rows.length) this.list.append(element("li", { class: "none", text: this.empty }));
  }

  async select(n) {
    this.selected = n;
    const buttons = this.list.querySelectorAll("button.item");
    buttons.forEach((button, i) => button.setAttribute("aria-current", String(i === n)));
    if (buttons[n]) buttons[n].scrollIntoView({ block: "nearest" });
    await this.onSelect(this.items[n]);
  }

  async page(direction) {
    const offset = this.offset + direction * this.limit;
    if (offset < 0 || offset >= this.total) return;
    this.offset = offset;
    await this.load(direction > 0 ? 0 : this.limit - 1);
  }

  // J and K: the next or previous row, on to the next or previous page at either end.
  async step(direction) {
    const n = this.selected + direction;
    if (n >= 0 && n < this.items.length) return this.select(n);
    if (direction > 0 && this.offset + this.items.length < this.total) return this.page(1);
    if (direction < 0 && this.offset > 0) return this.page(-1);
    return undefined;
  }

  reset() {
    this.offset = 0;
    return this.load(0);
  }

  current() {
    return this.selected >= 0 ? this.items[this.selected] : null;
  }
}
