//! Chat templates: the Jinja `chat_template` of a model's `tokenizer_config.json`, rendered with
//! minijinja the way Hugging Face's text-generation-inference renders it (Python-compatible string
//! and dict methods from minijinja-contrib, `raise_exception`, `bos_token` and `eos_token`, and
//! `add_generation_prompt` true), so that `uc run --chat` and `uc serve`'s chat completions give
//! the model the prompt it was trained on.

use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use uc_encode::error::{CompressError, bad};

/// One message of a conversation.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// A model's chat template.
pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
}

/// Largest `tokenizer_config.json` read (bytes).
const MAX_CONFIG: u64 = 16 << 20;

fn env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env
}

impl ChatTemplate {
    /// The template of `dir/tokenizer_config.json`: `None` when the file or its `chat_template`
    /// is absent; an error when the template does not parse.
    pub fn load(dir: &Path) -> Result<Option<ChatTemplate>, CompressError> {
        let p = dir.join("tokenizer_config.json");
        if !p.is_file() {
            return Ok(None);
        }
        let bytes = uc_pack::fs::read_capped(&p, MAX_CONFIG)?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| bad(&p, format!("invalid JSON: {e}")))?;
        let source = match &v["chat_template"] {
            Value::Null => return Ok(None),
            Value::String(s) => s.clone(),
            // A list of named templates: the default one.
            Value::Array(a) => a
                .iter()
                .find(|t| t["name"] == "default")
                .and_then(|t| t["template"].as_str())
                .ok_or_else(|| bad(&p, "chat_template: a list of templates without one named \"default\""))?
                .to_string(),
            _ => return Err(bad(&p, "chat_template is neither a string nor a list of templates")),
        };
        let token = |k: &str| match &v[k] {
            Value::String(s) => s.clone(),
            Value::Object(o) => o.get("content").and_then(Value::as_str).unwrap_or("").to_string(),
            _ => String::new(),
        };
        env()
            .template_from_str(&source)
            .map_err(|e| bad(&p, format!("chat_template does not parse: {e}")))?;
        Ok(Some(ChatTemplate {
            source,
            bos: token("bos_token"),
            eos: token("eos_token"),
        }))
    }

    /// The prompt for `messages`, ending where the assistant's answer starts; the template's own
    /// errors (`raise_exception`, e.g. roles that do not alternate) come back as text.
    pub fn render(&self, messages: &[Message]) -> Result<String, String> {
        env()
            .render_str(
                &self.source,
                minijinja::context! {
                    messages => messages,
                    add_generation_prompt => true,
                    bos_token => self.bos,
                    eos_token => self.eos,
                },
            )
            .map_err(|e| match e.detail() {
                Some(d) => d.to_string(),
                None => e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(config: Value) -> (std::path::PathBuf, Option<ChatTemplate>) {
        let d = std::env::temp_dir().join(format!("uc-chat-{}-{}", std::process::id(), rand_tag(&config)));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("tokenizer_config.json"), config.to_string()).unwrap();
        let t = ChatTemplate::load(&d).unwrap();
        (d, t)
    }

    fn rand_tag(v: &Value) -> u64 {
        v.to_string()
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
    }

    fn msgs(m: &[(&str, &str)]) -> Vec<Message> {
        m.iter()
            .map(|(r, c)| Message {
                role: r.to_string(),
                content: c.to_string(),
            })
            .collect()
    }

    #[test]
    fn smollm2s_chatml_template_adds_its_default_system_prompt() {
        // SmolLM2-135M-Instruct's template, as its GGUF carries it.
        let t = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
        let (d, c) = with(serde_json::json!({"chat_template": t, "eos_token": "<|im_end|>"}));
        let c = c.unwrap();
        assert_eq!(
            c.render(&msgs(&[("user", "Hi")])).unwrap(),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            c.render(&msgs(&[("system", "Be brief."), ("user", "Hi")])).unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn python_methods_tokens_and_raise_exception_work_as_in_transformers() {
        // Llama-2's shape: bos_token as an object, .strip(), roles checked with raise_exception.
        let t = "{{ bos_token }}{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'].strip() + ' [/INST]' }}{% else %}{{ ' ' + m['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
        let (d, c) = with(serde_json::json!({
            "chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": t}],
            "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
        }));
        let c = c.unwrap();
        assert_eq!(
            c.render(&msgs(&[("user", " Hi "), ("assistant", "Hello."), ("user", "Bye")]))
                .unwrap(),
            "<s>[INST] Hi [/INST] Hello. </s>[INST] Bye [/INST]"
        );
        let e = c.render(&msgs(&[("user", "a"), ("user", "b")])).unwrap_err();
        assert!(e.contains("must alternate"), "{e}");
        std::fs::remove_dir_all(d).unwrap();
        // No template, and a template that does not parse.
        let (d, c) = with(serde_json::json!({"eos_token": "</s>"}));
        assert!(c.is_none());
        std::fs::write(
            d.join("tokenizer_config.json"),
            serde_json::json!({"chat_template": "{% for %}"}).to_string(),
        )
        .unwrap();
        let e = ChatTemplate::load(&d).err().unwrap().to_string();
        assert!(e.contains("does not parse"), "{e}");
        std::fs::remove_dir_all(d).unwrap();
    }
}
