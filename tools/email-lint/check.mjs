// Offline HTML-email compatibility check of a rendered digest (make lint-email).
//
// Uses doiuse-email, which checks every HTML element, attribute and CSS property/value of
// the file against its bundled copy of the caniemail.com support tables (no network).
// Clients checked: all Gmail clients (desktop webmail, iOS, Android, mobile webmail), Apple
// Mail (macOS, iOS) and Outlook.com. doiuse-email 0.4.1 cannot select Outlook.com by its
// glob option (its list of selectable clients lacks "outlook.outlook-com", although its
// data has the column), so the list is set on the checker object directly.
// Exit status: 0 when no client reports an error (warnings and notes are printed), 1 when
// one does, 2 on bad usage.
import fs from 'node:fs';
import process from 'node:process';
import { DoIUseEmail } from 'doiuse-email';

const CLIENTS = [
  'gmail.desktop-webmail',
  'gmail.ios',
  'gmail.android',
  'gmail.mobile-webmail',
  'apple-mail.macos',
  'apple-mail.ios',
  'outlook.outlook-com',
];

const file = process.argv[2];
if (!file) {
  console.error('usage: node check.mjs DIGEST.html');
  process.exit(2);
}
const checker = new DoIUseEmail({ emailClients: ['gmail.*'] });
checker.emailClients = CLIENTS;
const result = checker.check(fs.readFileSync(file, 'utf8'));
const errors = [...new Set(result.errors ?? [])];
const warnings = [...new Set(result.warnings ?? [])];
for (const message of warnings) console.log(`warning: ${message}`);
for (const message of errors) console.log(`error: ${message}`);
console.log(
  `doiuse-email: ${errors.length} errors, ${warnings.length} warnings in ${file} ` +
    `(clients: ${CLIENTS.join(', ')})`,
);
process.exit(errors.length === 0 ? 0 : 1);
