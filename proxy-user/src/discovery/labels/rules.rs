//! The two Traefik rule syntaxes, reduced to what swarm-sticky routes on:
//! host names and path prefixes. Anything else is named in a warning.

use super::RuleLabels;

/// Parses a Traefik v1 rule: `Host:a,b;PathPrefix:/x`.
pub(super) fn parse_v1_rule(rule: &str, warnings: &mut Vec<String>) -> RuleLabels {
    let mut out = RuleLabels::default();
    for part in rule.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((matcher, values)) = part.split_once(':') else {
            warnings.push(format!(
                "traefik.frontend.rule: {part:?} is not `Matcher:value`; ignored"
            ));
            continue;
        };
        let values = values
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        match matcher.trim() {
            "Host" => out.hosts.extend(values),
            "PathPrefix" => out.path_prefixes.extend(values),
            "PathPrefixStrip" => {
                out.path_prefixes.extend(values);
                out.strip_prefix = true;
            }
            other => warnings.push(format!(
                "traefik.frontend.rule: matcher {other} is not supported; ignored"
            )),
        }
    }
    out
}

/// Parses a Traefik v2 rule: ``Host(`a`) && PathPrefix(`/x`, `/y`)``.
pub(super) fn parse_v2_rule(key: &str, rule: &str, warnings: &mut Vec<String>) -> RuleLabels {
    let mut out = RuleLabels::default();
    if rule.contains("||") || rule.contains('!') {
        warnings.push(format!(
            "{key}: `||` and `!` are not supported; only `&&` of Host and PathPrefix"
        ));
    }
    for part in rule.split("&&").map(str::trim).filter(|p| !p.is_empty()) {
        let Some((matcher, rest)) = part.split_once('(') else {
            warnings.push(format!("{key}: {part:?} is not `Matcher(`value`)`; ignored"));
            continue;
        };
        let args = rest.trim_end_matches(')');
        let values = args
            .split(',')
            .map(|v| v.trim().trim_matches('`').trim_matches('"').to_string())
            .filter(|v| !v.is_empty());
        match matcher.trim() {
            "Host" => out.hosts.extend(values),
            "PathPrefix" => out.path_prefixes.extend(values),
            other => warnings.push(format!("{key}: matcher {other} is not supported; ignored")),
        }
    }
    out
}
