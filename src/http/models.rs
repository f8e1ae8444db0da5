//! `GET /v1/models` and `GET /v1/models/{id}`: one catalogue that both the
//! Anthropic and the OpenAI SDKs can read. Errors use Anthropic's shape,
//! whose `error.message` the OpenAI SDKs read as well.

use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::ClientKey;
use super::error::{ApiError, ErrorKind};
use super::AppState;
use crate::api::models::{self, ListQuery};
use crate::api::Dialect;

const DIALECT: Dialect = Dialect::Anthropic;

pub async fn list(
    req: HttpRequest,
    _key: ClientKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid(format!("invalid query string: {e}"), DIALECT))?;
    let page = models::list_page(&query, &state.settings().claude.models)
        .map_err(|e| ApiError::invalid(e.0, DIALECT))?;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn get(
    _key: ClientKey,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    match models::find_model(&id, &state.settings().claude.models) {
        Some(model) => Ok(HttpResponse::Ok().json(model.to_json())),
        None => Err(ApiError::new(
            ErrorKind::NotFound,
            format!("model: {id}"),
            DIALECT,
        )),
    }
}
