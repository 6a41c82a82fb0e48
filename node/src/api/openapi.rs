//! The client API's OpenAPI 3 document, served at `GET /openapi.json`. It is generated from
//! the code: the routes' `#[utoipa::path]` annotations (in `client`, which also route them)
//! and the wire types' `ToSchema` (in the core crate), so it cannot drift from what a bank
//! answers. What is said once for every route (the error body, the shared error answers, the
//! read statement) lives here.

use crate::error::{ErrorBody, ErrorDetail};
use axum::http::header::CONTENT_TYPE;
use serde::Serialize;
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bank consortium: client API",
        description = "The API every bank of the consortium serves to its clients (the calls between banks, under `/peer/`, are not part of it). \
Every error is `{\"error\":{\"code\",\"message\"}}` with its HTTP status; `code` is stable, `message` is for people. \
Reads of user data carry the reader's signed read statement in the `authorization` header (security scheme `read_statement`). \
Money moves only with the holders' signatures (`POST /packages`), made by the client on the user's machine; see README.md."
    ),
    modifiers(&ReadStatement),
    components(
        schemas(ErrorBody, ErrorDetail),
        responses(Bad, Unauthorized, Forbidden, Missing, Conflict, TooLarge, Refused, TooMany, Internal, Unavailable)
    ),
    tags(
        (name = "users", description = "registration and the user's key"),
        (name = "accounts", description = "opening and reading accounts"),
        (name = "packages", description = "atomic groups of deposits, withdrawals and transfers"),
        (name = "operations", description = "what operators and their tools read: status, health, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// The `authorization` header of reads, as a security scheme (the routes that need it name it).
struct ReadStatement;

impl Modify for ReadStatement {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let how = "The reader's signed read statement: `Consortium-Read v1 READER AUDIENCE TIME_MS NONCE SIG SCOPE`. \
READER is the CPF's 11 digits or `teller` (this bank's operator); AUDIENCE the bank's address as the manifest lists it; \
TIME_MS Unix milliseconds (within 30 s of the bank's clock); NONCE 32 hex digits (used once); \
SCOPE what is read: `user/CPF`, `accounts-of/CPF`, `account/KEY`, `statement/KEY`, `package/ID` or `consortium/CPF`; \
SIG 128 hex digits, the reader's Ed25519 signature (see `consortium_core::trust::read`). \
Missing or malformed: 401 `unauthenticated`; signed by another key, for another scope or bank, or not the reader's data: 403.";
        components.add_security_scheme("read_statement", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description("authorization", how))));
    }
}

// The error answers that many routes share, each with the codes it carries.

/// A malformed request: a body that is not JSON or not of the documented shape (`malformed_json`,
/// `bad_field`, `bad_body`), or a field the rules refuse (`invalid_cpf`, `bad_key`, `bad_id`, ...).
#[derive(ToResponse)]
#[response(description = "malformed request (`malformed_json`, `bad_field`, `invalid_cpf`, `bad_key`, `bad_id`, `bad_amount`, ...)")]
pub struct Bad(#[allow(dead_code)] ErrorBody);

#[derive(ToResponse)]
#[response(description = "`unauthenticated`: no read statement, a malformed one, one out of the time window, or made before the bank started; `replayed`: its nonce was seen")]
pub struct Unauthorized(#[allow(dead_code)] ErrorBody);

#[derive(ToResponse)]
#[response(description = "`not_yours` (the reader may not read this, or it does not exist), `unknown_reader`, `bad_signature`, `wrong_scope`, `wrong_audience`")]
pub struct Forbidden(#[allow(dead_code)] ErrorBody);

#[derive(ToResponse)]
#[response(description = "not found (`user_not_found`, `account_not_found`, `package_not_found`): what a teller is told, or a holder who is not a user here")]
pub struct Missing(#[allow(dead_code)] ErrorBody);

#[derive(ToResponse)]
#[response(description = "conflicts with what the bank holds (`id_reused`: the id names another package; `personal_exists`, ...)")]
pub struct Conflict(#[allow(dead_code)] ErrorBody);

#[derive(ToResponse)]
#[response(description = "`body_too_large`: the body is over 65,536 bytes")]
pub struct TooLarge(#[allow(dead_code)] ErrorBody);

#[derive(ToResponse)]
#[response(description = "a rule refuses it (`no_key`, ...)")]
pub struct Refused(#[allow(dead_code)] ErrorBody);

#[derive(ToResponse)]
#[response(description = "`rate_limited`: too many requests from this address (`[limits] requests_per_ip_per_s`)")]
pub struct TooMany(#[allow(dead_code)] ErrorBody);

#[derive(ToResponse)]
#[response(description = "`internal`: the bank's storage failed (logged; never expected)")]
pub struct Internal(#[allow(dead_code)] ErrorBody);

#[derive(ToResponse)]
#[response(description = "`busy`: too many recent read statements to remember their nonces; try again")]
pub struct Unavailable(#[allow(dead_code)] ErrorBody);

/// `GET /health/live`.
#[derive(Serialize, ToSchema)]
pub struct Live {
    pub live: bool,
}

/// `GET /health/ready`.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    pub ready: bool,
}

/// The document, built once per process (it is the same at every bank).
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| super::client::routes().into_openapi().to_pretty_json().expect("the OpenAPI document serializes"))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses(
    (status = 200, description = "the client API's OpenAPI 3 document", body = Object),
    (status = 429, response = TooMany),
))]
pub async fn openapi_json() -> ([(axum::http::header::HeaderName, &'static str); 1], &'static str) {
    ([(CONTENT_TYPE, "application/json")], document())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use serde_json::Value;
    use tower::ServiceExt;

    fn doc() -> Value {
        serde_json::from_str(document()).unwrap()
    }

    /// Every operation of the document: (method, path, documented statuses).
    fn operations(doc: &Value) -> Vec<(String, String, Vec<String>)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                out.push((method.to_uppercase(), path.clone(), op["responses"].as_object().unwrap().keys().cloned().collect()));
            }
        }
        out
    }

    /// Every `$ref` in `v`.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_and_every_reference_resolves() {
        let d = doc();
        assert!(d["openapi"].as_str().unwrap().starts_with("3."), "{}", d["openapi"]);
        // It reads back as an OpenAPI document (utoipa's model of the specification).
        let parsed: utoipa::openapi::OpenApi = serde_json::from_str(document()).unwrap();
        assert!(!parsed.paths.paths.is_empty());
        let mut all = Vec::new();
        refs(&d, &mut all);
        assert!(all.len() > 20, "the document refers to its components: {all:?}");
        for r in all {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} is not local"));
            assert!(d.pointer(pointer).is_some(), "{r} does not resolve");
        }
        // Reads name the read statement, which is defined; the error body is described.
        assert_eq!(d["paths"]["/users/{cpf}"]["get"]["security"][0]["read_statement"], serde_json::json!([]));
        assert_eq!(d["components"]["securitySchemes"]["read_statement"]["name"], "authorization");
        assert!(d["components"]["schemas"]["ErrorBody"]["properties"]["error"].is_object());
        // A body with an unknown field is refused, so the document says so.
        assert_eq!(d["components"]["schemas"]["Package"]["additionalProperties"], false);
        // The limits the document states are the ones the rules enforce.
        let schema = |name: &str, field: &str| d["components"]["schemas"][name]["properties"][field].clone();
        use consortium_core::package::spec::{MAX_ID_LEN, MAX_OPERATIONS, MAX_SIGNATURES};
        assert_eq!(schema("Package", "operations")["maxItems"], MAX_OPERATIONS);
        assert_eq!(schema("Package", "signatures")["maxItems"], MAX_SIGNATURES);
        assert_eq!(schema("Package", "id")["pattern"], format!("^[A-Za-z0-9._:-]{{1,{MAX_ID_LEN}}}$"));
        assert_eq!(schema("NewAccount", "holders")["maxItems"], crate::domain::account::MAX_HOLDERS);
        assert_eq!(schema("Operation", "amount")["minimum"], 1);
    }

    /// The routes are the document's own (`client::routes` routes each handler by its
    /// annotation); this keeps anyone from routing around it, and checks that every documented
    /// operation is really routed and answers a status it documents.
    #[tokio::test]
    async fn every_client_route_is_documented_and_every_documented_one_routed() {
        let needle = [".rou", "te("].concat();
        for (file, src) in [("client.rs", include_str!("client.rs")), ("mod.rs", include_str!("mod.rs"))] {
            assert!(!src.contains(&needle), "{file} adds a route without its description: route it with `routes!` in client::routes");
        }
        let d = doc();
        let ops = operations(&d);
        let mut listed: Vec<String> = ops.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
        listed.sort();
        let expected = [
            "GET /accounts/{key}",
            "GET /accounts/{key}/statement",
            "GET /consortium/users/{cpf}/accounts",
            "GET /health/live",
            "GET /health/ready",
            "GET /metrics",
            "GET /openapi.json",
            "GET /packages/{id}",
            "GET /status",
            "GET /users/{cpf}",
            "GET /users/{cpf}/accounts",
            "POST /accounts",
            "POST /packages",
            "POST /users",
            "POST /users/{cpf}/key",
            "POST /users/{cpf}/reset",
        ];
        assert_eq!(listed, expected);
        let node = crate::api::tests::test_node();
        for (method, path, statuses) in ops {
            let concrete = path.replace("{cpf}", "52998224725").replace("{key}", "000001").replace("{id}", "p-1");
            let body = if method == "POST" { Body::from("{}") } else { Body::empty() };
            let req = axum::http::Request::builder().method(method.as_str()).uri(&concrete).header("content-type", "application/json").body(body).unwrap();
            let resp = crate::api::router(node.clone()).oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(status != 405 && !text.contains("\"no_route\""), "{method} {path} is documented but not routed: {status} {text}");
            assert!(statuses.contains(&status.to_string()), "{method} {concrete} answered {status}, which its description does not list ({statuses:?}): {text}");
        }
    }

    #[tokio::test]
    async fn every_bank_serves_the_document() {
        let req = axum::http::Request::get("/openapi.json").body(Body::empty()).unwrap();
        let resp = crate::api::router(crate::api::tests::test_node()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), doc());
    }
}
