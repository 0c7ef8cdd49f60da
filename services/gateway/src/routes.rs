//! The REST routes, one table: the router serves it and the OpenAPI document describes
//! it. Each entry is a `google.api.http` option of `config_backup.proto`.

use serde_json::{Map, Value, json};

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its snake_case name (camelCase is accepted too).
    pub name: &'static str,
    /// OpenAPI type: string, integer, boolean; `date-time` for RFC 3339 strings.
    pub kind: &'static str,
    /// Required?
    pub required: bool,
    /// What it is.
    pub description: &'static str,
}

/// A route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// GET or POST.
    pub method: &'static str,
    /// The path.
    pub path: &'static str,
    /// The RPC behind it.
    pub rpc: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Query parameters.
    pub params: &'static [Param],
    /// The success status.
    pub success: u16,
}

const fn p(name: &'static str, kind: &'static str, required: bool, description: &'static str) -> Param {
    Param {
        name,
        kind,
        required,
        description,
    }
}

/// Every route of the shim.
pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/api/v1/backups/config/run",
        rpc: "Backup",
        summary: "Run a backup now (body: {\"domains\": [...]}, optional)",
        params: &[p("domains", "string", false, "Comma-separated domains; empty for all")],
        success: 200,
    },
    Route {
        method: "GET",
        path: "/api/v1/backups/config/status",
        rpc: "Status",
        summary: "The last run, each domain's last commit, the push state and the next scheduled run",
        params: &[p(
            "site",
            "string",
            false,
            "Another site's state, from the shared database",
        )],
        success: 200,
    },
    Route {
        method: "GET",
        path: "/api/v1/backups/config/history",
        rpc: "History",
        summary: "File changes from the audit trail, newest first, paginated",
        params: &[
            p("domain", "string", false, "gateway, dns, radius, kea or ospf"),
            p("path", "string", false, "Only this file"),
            p("since", "date-time", false, "At or after (RFC 3339)"),
            p("until", "date-time", false, "Before (RFC 3339)"),
            p("change_type", "string", false, "added, modified, deleted or unchanged"),
            p("include_unchanged", "boolean", false, "Include unchanged files"),
            p("page_size", "integer", false, "1 to 1000 (default 100)"),
            p("page_token", "string", false, "next_page_token of the previous page"),
            p(
                "site",
                "string",
                false,
                "Another site's trail, from the shared database",
            ),
        ],
        success: 200,
    },
    Route {
        method: "GET",
        path: "/api/v1/backups/config/diff",
        rpc: "Diff",
        summary: "Difference between two commits; format=patch answers text/x-diff",
        params: &[
            p("commit1", "string", true, "Older commit (7 to 40 hex digits)"),
            p("commit2", "string", true, "Newer commit (7 to 40 hex digits)"),
            p("domain", "string", false, "Only files of this domain"),
            p("path", "string", false, "Only this file"),
            p("format", "string", false, "json (default) or patch"),
            p(
                "reveal_secrets",
                "boolean",
                false,
                "Show sealed secrets in clear (admin only; recorded in the audit trail)",
            ),
        ],
        success: 200,
    },
    Route {
        method: "POST",
        path: "/api/v1/backups/config/rollback",
        rpc: "Rollback",
        summary: "Start a rollback of a domain to a commit (admin only)",
        params: &[
            p("commit", "string", true, "Target commit (7 to 40 hex digits)"),
            p(
                "domain",
                "string",
                false,
                "Domain to roll back; default: the commit's own; or all",
            ),
            p("dry_run", "boolean", false, "Only plan and validate"),
            p(
                "remove_extra",
                "boolean",
                false,
                "Remove live files that did not exist at the target",
            ),
            p("reason", "string", false, "Why"),
            p(
                "allow_unsigned",
                "boolean",
                false,
                "Apply a target whose signature does not verify with the signing key (needs a reason)",
            ),
        ],
        success: 202,
    },
    Route {
        method: "GET",
        path: "/api/v1/backups/config/rollback/status",
        rpc: "RollbackStatus",
        summary: "A rollback's state; watch=true streams NDJSON progress until the end",
        params: &[
            p("task_id", "string", true, "The task id returned by rollback"),
            p("watch", "boolean", false, "Stream progress as newline-delimited JSON"),
        ],
        success: 200,
    },
    Route {
        method: "GET",
        path: "/api/v1/backups/config/sites",
        rpc: "ListSites",
        summary: "The sites sharing the database: last run, push state, unpushed commits, next scheduled run",
        params: &[],
        success: 200,
    },
    Route {
        method: "POST",
        path: "/api/v1/backups/config/verify",
        rpc: "Verify",
        summary: "Run a restore drill now (admin): clone the remote afresh and prove each domain restorable",
        params: &[],
        success: 200,
    },
    Route {
        method: "GET",
        path: "/api/v1/backups/config/drills",
        rpc: "ListDrills",
        summary: "The latest restore drills, newest first, each domain PROVEN or FAILED with its causes",
        params: &[p("limit", "integer", false, "1 to 100 (default 10)")],
        success: 200,
    },
];

/// Paths outside the API's own table.
pub const HEALTH_PATH: &str = "/healthz";
/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/v1/backups/config/openapi.json";

/// The OpenAPI 3 document of the shim.
pub fn openapi() -> Value {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let mut paths = Map::new();
    for r in ROUTES {
        let params: Vec<Value> = r
            .params
            .iter()
            .map(|p| {
                let schema = match p.kind {
                    "date-time" => json!({"type": "string", "format": "date-time"}),
                    k => json!({"type": k}),
                };
                json!({"name": p.name, "in": "query", "required": p.required, "description": p.description, "schema": schema})
            })
            .collect();
        let mut responses = Map::new();
        let content_type = if r.rpc == "RollbackStatus" {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        responses.insert(
            r.success.to_string(),
            json!({"description": format!("The {} answer (proto3 JSON, proto field names)", r.rpc),
                   "content": {"application/json": {"schema": {"type": "object"}}, content_type: {"schema": {"type": "object"}}}}),
        );
        for (code, what) in [
            ("400", "Invalid argument"),
            ("401", "Missing or invalid bearer token"),
            ("403", "Role not allowed"),
            ("404", "Not found"),
            ("409", "Another backup or rollback is running"),
            ("503", "Unavailable"),
        ] {
            responses.insert(
                code.to_owned(),
                json!({"description": what, "content": {"application/json": {"schema": error}}}),
            );
        }
        let op = json!({
            "operationId": r.rpc,
            "summary": r.summary,
            "parameters": params,
            "responses": responses,
            "security": [{"bearer": []}],
        });
        paths.entry(r.path.to_owned()).or_insert_with(|| json!({}))[r.method.to_ascii_lowercase()] = op;
    }
    paths.insert(
        HEALTH_PATH.to_owned(),
        json!({"get": {"operationId": "Healthz", "summary": "SERVING when the database and the repository are ready",
                        "responses": {"200": {"description": "Serving"}, "503": {"description": "Not serving"}}}}),
    );
    json!({
        "openapi": "3.0.3",
        "info": {"title": "config-backup REST API", "version": "v1",
                 "description": "grpc-gateway-style REST shim over configbackup.v1.ConfigBackup"},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"Error": {"type": "object", "properties": {
                "code": {"type": "integer", "description": "gRPC status code"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}}}}}
        }
    })
}
