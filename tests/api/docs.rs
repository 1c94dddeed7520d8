//! `/docs`: the interactive API reference loads with its assets from this server alone and
//! reads `/openapi.json`.

use crate::helpers::{Backend, TestApp, TestDatabase};

/// The values of `attribute="…"` in an HTML page.
fn attribute_values<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let marker = format!("{attribute}=\"");
    html.match_indices(&marker)
        .filter_map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

async fn get_text(app: &TestApp, path: &str) -> (String, String) {
    let response = app.client.get(app.url(path)).send().await.expect("GET");
    assert_eq!(response.status(), 200, "GET {path}");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    (content_type, response.text().await.unwrap())
}

async fn the_reference_is_served_offline(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &[]).await;
    let redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = redirect.get(app.url("/docs")).send().await.unwrap();
    assert!(response.status().is_redirection());
    assert_eq!(response.headers()["location"], "/docs/");

    let (content_type, html) = get_text(&app, "/docs/").await;
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(!html.contains("http://") && !html.contains("https://"), "the page names no external URL:\n{html}");
    let assets: Vec<&str> = attribute_values(&html, "src").into_iter().chain(attribute_values(&html, "href")).collect();
    assert!(assets.iter().any(|asset| asset.ends_with("swagger-ui-bundle.js")), "{assets:?}");
    assert!(assets.iter().any(|asset| asset.ends_with("swagger-initializer.js")), "{assets:?}");
    for asset in &assets {
        let path = format!("/docs/{}", asset.trim_start_matches("./"));
        let (_, body) = get_text(&app, &path).await;
        assert!(!body.is_empty(), "{path} is empty");
        for cdn in ["unpkg.com", "cdn.jsdelivr.net", "cdnjs.cloudflare.com", "fonts.googleapis.com"] {
            assert!(!body.contains(cdn), "{path} loads from {cdn}");
        }
    }

    let (_, initializer) = get_text(&app, "/docs/swagger-initializer.js").await;
    assert!(!initializer.contains("http://") && !initializer.contains("https://"), "{initializer}");
    assert!(initializer.contains("\"url\": \"/openapi.json\""), "{initializer}");
    assert!(initializer.contains("\"validatorUrl\": \"none\""), "{initializer}");
    let document = app.get_json("/openapi.json").await;
    assert_eq!(document["info"]["title"], "asynclab");
    app.stop().await;
}

async fn the_reference_needs_the_token(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = TestApp::start(&database, &["--token", "docs-token"]).await;
    assert_eq!(app.client.get(app.url("/docs/")).send().await.unwrap().status(), 401);
    let allowed = app.client.get(app.url("/docs/")).bearer_auth("docs-token").send().await.unwrap();
    assert_eq!(allowed.status(), 200);
    app.stop().await;
}

crate::both_stores!(the_reference_is_served_offline, the_reference_needs_the_token);
