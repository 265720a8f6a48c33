//! A base URL, parsed once when its file or config loads. A call joins its path and query to
//! it, and the parser copies the scheme and host from the parsed base rather than reading
//! them again (parsing the whole URL, host and IDNA included, was ~5% of the instructions of a
//! pass-through call).

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    url: Url,
    /// The base's path without its trailing `/` (`/v1` of `https://host/v1/`), which a call's
    /// path follows.
    path_len: usize,
}

impl BaseUrl {
    /// An `http` or `https` URL without a query or fragment.
    pub fn parse(text: &str) -> Result<BaseUrl, String> {
        if !(text.starts_with("http://") || text.starts_with("https://")) {
            return Err(format!("base URL '{text}' must start with http:// or https://"));
        }
        let url = Url::parse(text).map_err(|e| format!("base URL '{text}' is not a URL: {e}"))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("base URL '{text}' has a query or fragment; a mapping's `query` adds parameters"));
        }
        let path_len = url.path().trim_end_matches('/').len();
        Ok(BaseUrl { url, path_len })
    }

    /// The URL as text, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        self.url.as_str().trim_end_matches('/')
    }

    /// The base's path, without a trailing `/` (empty for `https://host`).
    pub(crate) fn path(&self) -> &str {
        &self.url.path()[..self.path_len]
    }

    /// The URL of `path_and_query`, which starts with [`BaseUrl::path`] (a mapping's paths
    /// start with `/`: its schema says so).
    pub(crate) fn join(&self, path_and_query: &str) -> Result<Url, url::ParseError> {
        Url::options().base_url(Some(&self.url)).parse(path_and_query)
    }
}

impl std::str::FromStr for BaseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<BaseUrl, String> {
        BaseUrl::parse(s)
    }
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::BaseUrl;

    fn joined(base: &str, rest: &str) -> String {
        let b = BaseUrl::parse(base).unwrap();
        b.join(&format!("{}{rest}", b.path())).unwrap().to_string()
    }

    #[test]
    fn a_call_path_follows_the_base_path() {
        assert_eq!(joined("https://api.test", "/chat"), "https://api.test/chat");
        assert_eq!(joined("https://api.test/", "/chat"), "https://api.test/chat");
        assert_eq!(joined("https://api.test/v1/", "/chat?a=b%26c"), "https://api.test/v1/chat?a=b%26c");
        assert_eq!(joined("http://127.0.0.1:9/x/v1", "/m/a%2Fb:go"), "http://127.0.0.1:9/x/v1/m/a%2Fb:go");
        assert_eq!(BaseUrl::parse("https://api.test/v1/").unwrap().as_str(), "https://api.test/v1");
    }

    #[test]
    fn refuses_what_is_no_base() {
        for bad in ["ftp://x", "https://", "https://a b", "https://x/v1?key=1", "https://x/#f", "api.test"] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
