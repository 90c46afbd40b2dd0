import pg from "pg";

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * A schema of its own for each server in one PostgreSQL run, so the vault's tables, the
 * baseline's and anyone else's never meet. The servers reach it through the connection
 * string (`options=-c search_path=…`), as any deployment could.
 */
export class PostgresSchema {
  private constructor(
    readonly databaseUrl: string,
    readonly name: string,
  ) {}

  static async create(databaseUrl: string, name: string): Promise<PostgresSchema> {
    if (!SCHEMA_NAME.test(name)) throw new Error(`bad schema name ${name}`);
    await withClient(databaseUrl, (client) => client.query(`CREATE SCHEMA ${name}`));
    return new PostgresSchema(databaseUrl, name);
  }

  /** The connection string with this schema as the search path (any given options are kept). */
  get url(): string {
    const url = new URL(this.databaseUrl);
    const given = url.searchParams.get("options");
    const option = `-c search_path=${this.name}`;
    url.searchParams.set("options", given === null ? option : `${given} ${option}`);
    return url.toString();
  }

  async drop(): Promise<void> {
    await withClient(this.databaseUrl, (client) =>
      client.query(`DROP SCHEMA IF EXISTS ${this.name} CASCADE`),
    );
  }
}

/** The server's version string, for the results file. */
export async function postgresVersion(databaseUrl: string): Promise<string> {
  return withClient(databaseUrl, async (client) => {
    const { rows } = await client.query<{ server_version: string }>("SHOW server_version");
    return rows[0]?.server_version ?? "unknown";
  });
}

async function withClient<T>(databaseUrl: string, work: (client: pg.Client) => Promise<T>) {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
