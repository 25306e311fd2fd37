//! `bootstrap onboard --dry-run` offline, as a user first runs it on the example file: the
//! `orders` team (prefixes, allKeys with sync, optional, failoverRegion; no `name`) plans the
//! role policy and SecretProviderClass the snapshot holds, and says it could not read the key
//! names without credentials.

mod common;

use common::cli::offline as bootstrap;

#[test]
fn the_orders_team_plans_its_policy_and_spc() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/teams.yaml");
    let out = bootstrap(&[
        "onboard",
        "-f",
        file,
        "--dry-run",
        "--region",
        "eu-west-1",
        "--output",
        "json",
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let orders = report["teams"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "orders"))
        .cloned()
        .expect("the unnamed team is named after its namespace");
    assert!(
        orders["hints"]
            .to_string()
            .contains("the key names of teams/orders/config were not read"),
        "{orders:#}"
    );
    let documents: Vec<&serde_json::Value> = orders["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| {
            let r = c["resource"].as_str().unwrap_or_default();
            r.starts_with("IAM role") || r.contains("SecretProviderClass")
        })
        .flat_map(|c| c["documents"].as_array().into_iter().flatten())
        .collect();
    insta::assert_snapshot!(
        "orders_plan",
        serde_json::to_string_pretty(&documents).expect("JSON")
    );
}
