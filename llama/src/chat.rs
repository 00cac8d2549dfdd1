//! The file's own chat template (`tokenizer.chat_template`, Jinja), rendered with `minijinja`.

use minijinja::syntax::SyntaxConfig;
use minijinja::{context, Environment, Error, ErrorKind};

use crate::error::LlamaError;
use crate::tokenizer::Tokenizer;

/// Instruction budget for one rendering: a template comes from the model file, so a hostile
/// one must not loop forever. A ChatML rendering takes a few hundred.
const TEMPLATE_FUEL: u64 = 1_000_000;

/// Renders `template` for one user message followed by the assistant's generation prompt
/// (`messages = [{role: "user", content}]`, `add_generation_prompt = true`), as Hugging Face's
/// `apply_chat_template` does. `bos_token` and `eos_token` are the tokenizer's, and the usual
/// `raise_exception(message)` helper is defined.
///
/// ```
/// # use llama::render_chat_with;
/// let template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}\
///                 {% if add_generation_prompt %}<|assistant|>{% endif %}";
/// let text = render_chat_with(template, "hi", "", "</s>").unwrap();
/// assert_eq!(text, "<|user|>hi<|assistant|>");
/// ```
pub fn render_chat(
    template: &str,
    user_message: &str,
    tokenizer: &Tokenizer,
) -> Result<String, LlamaError> {
    let token = |id: Option<u32>| id.and_then(|id| tokenizer.token(id)).unwrap_or("");
    render_chat_with(
        template,
        user_message,
        token(tokenizer.bos_id()),
        token(tokenizer.eos_id()),
    )
}

/// [`render_chat`] with the `bos_token` and `eos_token` strings given directly.
pub fn render_chat_with(
    template: &str,
    user_message: &str,
    bos_token: &str,
    eos_token: &str,
) -> Result<String, LlamaError> {
    let engine_error = |e: Error| LlamaError::Template {
        what: format!("{e:#}"),
    };
    let mut env = Environment::new();
    env.set_fuel(Some(TEMPLATE_FUEL));
    // Hugging Face renders chat templates with these two on.
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(engine_error)?,
    );
    env.add_function(
        "raise_exception",
        |message: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        },
    );
    env.add_template("chat", template).map_err(engine_error)?;
    env.get_template("chat")
        .map_err(engine_error)?
        .render(context! {
            messages => vec![context! { role => "user", content => user_message }],
            add_generation_prompt => true,
            bos_token => bos_token,
            eos_token => eos_token,
        })
        .map_err(engine_error)
}
