// Allure 3 configuration of drkit's HTML report, read by `allure generate --config`.
// drkit/evidence/html.py passes the report name (--name), the output folder (--output) and
// the layout: DRKIT_REPORT_SINGLE_FILE=1 makes one self-contained HTML file instead of a folder.
// Allure 3 reads categories from its configuration, not from the results' categories.json:
// DRKIT_REPORT_CATEGORIES names that file (drkit's findings: RTO breach, RPO breach, ...).
import { existsSync, readFileSync } from "node:fs";

const categoriesFile = process.env.DRKIT_REPORT_CATEGORIES;
const categories =
  categoriesFile && existsSync(categoriesFile)
    ? JSON.parse(readFileSync(categoriesFile, "utf8"))
    : null;

export default {
  name: "drkit drill report",
  ...(categories ? { categories: { rules: categories } } : {}),
  plugins: {
    awesome: {
      options: {
        singleFile: process.env.DRKIT_REPORT_SINGLE_FILE === "1",
        reportLanguage: "en",
      },
    },
  },
};
