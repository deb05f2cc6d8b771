//! Sign-up and access tokens, through nginx.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use boxoffice_domain::{ids::UserId, tokens::Signer};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, http_client, nginx_url, sign_up, test_config};

#[tokio::test]
async fn a_new_user_charges_points_and_reads_the_new_balance() {
    let (http, base) = (http_client(), nginx_url());
    let user = sign_up(&http, &base, "kim").await;

    let balance: Value = http
        .get(format!("{base}/api/v1/me/points"))
        .header("authorization", user.bearer())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(balance, json!({ "userId": user.id, "balance": 0 }));

    let charged = http
        .post(format!("{base}/api/v1/me/points/charges"))
        .header("authorization", user.bearer())
        .json(&json!({ "amount": 1500 }))
        .send()
        .await
        .unwrap();
    assert_eq!(charged.status(), 200);
    assert_eq!(charged.json::<Value>().await.unwrap()["balance"], 1500);

    let balance: Value = http
        .get(format!("{base}/api/v1/me/points"))
        .header("authorization", user.bearer())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(balance["balance"], 1500);
}

#[tokio::test]
async fn sign_up_refuses_an_empty_name() {
    let (http, base) = (http_client(), nginx_url());
    let response = http
        .post(format!("{base}/api/v1/users"))
        .json(&json!({ "name": "  " }))
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "INVALID_INPUT").await;
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Every way of presenting a bad identity gets the same 401 problem.
#[tokio::test]
async fn missing_malformed_expired_forged_and_unsigned_tokens_are_unauthorized() {
    let (http, base) = (http_client(), nginx_url());
    let config = test_config(&[]);
    let real = Signer::new(config.jwt_secret_bytes());
    let now = boxoffice_domain::tokens::now_secs();
    let user = sign_up(&http, &base, "victim").await;
    let claims =
        |exp: u64| json!({ "sub": user.id.to_string(), "iat": now, "exp": exp, "typ": "access" });

    let expired = real.sign(&claims(now - 5));
    let forged = Signer::new(b"someone-elses-secret-0123456789abcdef").sign(&claims(now + 600));
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&claims(now + 600))
    );
    let hs512 = {
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512);
        jsonwebtoken::encode(
            &header,
            &claims(now + 600),
            &jsonwebtoken::EncodingKey::from_secret(config.jwt_secret_bytes()),
        )
        .unwrap()
    };
    let queue_token = boxoffice_domain::queue::QueueTokens::new(real.clone()).issue_waiting(
        UserId::new(user.id),
        boxoffice_domain::ids::ConcertId::new(1),
        1,
        boxoffice_domain::now_ms(),
        0,
    );

    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("not bearer", Some(format!("Basic {}", user.token))),
        ("malformed", Some("Bearer not.a.jwt".into())),
        ("expired", Some(format!("Bearer {expired}"))),
        ("forged signature", Some(format!("Bearer {forged}"))),
        ("alg none", Some(format!("Bearer {unsigned}"))),
        ("alg HS512", Some(format!("Bearer {hs512}"))),
        (
            "queue token as access token",
            Some(format!("Bearer {queue_token}")),
        ),
    ];
    for (case, header) in cases {
        let mut request = http.get(format!("{base}/api/v1/me/points"));
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{case}");
        assert_problem(response, 401, "UNAUTHORIZED").await;
    }
}
