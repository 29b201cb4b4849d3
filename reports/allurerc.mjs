// Allure 3 configuration of drkit's HTML report, read by `allure generate --config`.
// drkit/evidence/html.py passes the report name (--name), the output folder (--output) and
// the layout: DRKIT_REPORT_SINGLE_FILE=1 makes one self-contained HTML file instead of a folder.
export default {
  name: "drkit drill report",
  plugins: {
    awesome: {
      options: {
        singleFile: process.env.DRKIT_REPORT_SINGLE_FILE === "1",
        reportLanguage: "en",
      },
    },
  },
};
